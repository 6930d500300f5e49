//go:build unix

package dockerconfig

import (
	"io/fs"
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

func TestConfigureRefusesSymlink(t *testing.T) {
	realDir := t.TempDir()
	target := filepath.Join(realDir, "config.json")
	require.NoError(t, os.WriteFile(target, []byte("{}"), 0o600))
	link := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.Symlink(target, link))
	before := aged(t, target)

	for _, dry := range []bool{false, true} {
		_, err := Configure(link, []string{"cgr.dev"}, Options{DryRun: dry})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "is a symbolic link to")
		assert.Contains(t, err.Error(), "DOCKER_CONFIG="+`"`+realDir+`"`, "the way to edit the real file")
		fi, err := os.Lstat(link)
		require.NoError(t, err)
		assert.Equal(t, fs.ModeSymlink, fi.Mode().Type(), "the link was replaced")
		assert.Equal(t, before, snap(t, target), "the link was written through")
	}

	// The suggested fix works.
	_, err := Configure(filepath.Join(realDir, "config.json"), []string{"cgr.dev"}, Options{})
	require.NoError(t, err)
	assert.JSONEq(t, `{"credHelpers": {"cgr.dev": "cgr"}}`, snap(t, target).data)
}
