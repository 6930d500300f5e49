package dockerconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFindOnPath(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	require.NoError(t, err)
	folder := func(t *testing.T) string {
		dir := t.TempDir()
		require.NoError(t, os.Chmod(dir, 0o755))
		return dir
	}
	program := func(t *testing.T, dir, name string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
		return p
	}
	list := func(dirs ...string) string { return strings.Join(dirs, string(os.PathListSeparator)) }

	mine := folder(t)
	require.NoError(t, os.Symlink(self, filepath.Join(mine, binaryName)))
	chainctlDir := folder(t)
	chainctl := program(t, chainctlDir, "chainctl")
	require.NoError(t, os.Symlink(chainctl, filepath.Join(chainctlDir, binaryName)))
	otherDir := folder(t)
	other := program(t, otherDir, binaryName)

	assert.Equal(t, OnPath{}, FindOnPath(list(folder(t), "relative"), self), "none; a relative folder is skipped")

	o := FindOnPath(list(mine, chainctlDir, otherDir), self)
	assert.Equal(t, filepath.Join(mine, binaryName), o.Path)
	assert.True(t, o.Self)
	assert.False(t, o.Chainctl)
	assert.Equal(t, []string{filepath.Join(chainctlDir, binaryName), other}, o.Shadowed)

	o = FindOnPath(list(chainctlDir, mine), self)
	assert.True(t, o.Chainctl)
	assert.False(t, o.Self)
	assert.Equal(t, chainctl, o.Target)

	o = FindOnPath(list(otherDir, otherDir), self)
	assert.Equal(t, other, o.Path)
	assert.False(t, o.Self || o.Chainctl)
	assert.Empty(t, o.Shadowed, "a folder listed twice is one program")
}
