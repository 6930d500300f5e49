//go:build unix

package creds

import (
	"io/fs"
	"os"
	"syscall"
)

// ownedByMe reports whether fi belongs to the effective user, so a file
// another user planted is never trusted.
func ownedByMe(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// noFollow makes opening a cache entry refuse a symlink planted in its place.
const noFollow = syscall.O_NOFOLLOW
