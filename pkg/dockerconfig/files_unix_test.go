//go:build unix

package dockerconfig

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A FIFO planted as the config is refused at once, not waited on.
func TestConfigureRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	done := make(chan error, 1)
	go func() {
		_, err := Configure(path, []string{"cgr.dev"}, Options{})
		done <- err
	}()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "is a FIFO (named pipe), not a regular file")
	case <-time.After(10 * time.Second):
		t.Fatal("Configure blocked on a FIFO")
	}
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeNamedPipe, fi.Mode().Type())
}
