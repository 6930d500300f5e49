//go:build unix

package creds

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// ownedByMe reports whether fi belongs to the effective user, so a file
// another user planted is never trusted.
func ownedByMe(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// ownerID is the user id that owns fi, or -1 if it cannot be told.
func ownerID(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// checkTrusted refuses a file that another user could have written: like
// ssh with its config, the file must belong to the effective user or root
// and must not be writable by group or others.
func checkTrusted(path string, fi fs.FileInfo) error {
	path = logsafe.Quote(path, pathLimit)
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("cannot tell who owns %s", path)
	}
	if uid := int(st.Uid); uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("%s belongs to user id %d, not to this user (id %d) or root, so anyone could have written it; chown it to this user, or remove it", path, uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s has mode %04o, writable by group or others; run chmod go-w %s", path, fi.Mode().Perm(), path)
	}
	return nil
}

// cacheSupported is true: owner, mode, O_NOFOLLOW and flock(2) let the
// cache prove its folder private.
const cacheSupported = true

// noFollow makes opening a cache entry refuse a symlink planted in its place.
const noFollow = syscall.O_NOFOLLOW

// nonBlock makes open return at once on a FIFO with no writer (or a device
// that would wait), so the type check after it can refuse the file.
const nonBlock = syscall.O_NONBLOCK

// openFlags are added to every open of a file the helper reads: never
// become a controlling terminal, never leak into a child process.
const openFlags = syscall.O_CLOEXEC | syscall.O_NOCTTY
