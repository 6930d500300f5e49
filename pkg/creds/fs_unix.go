//go:build unix

package creds

import (
	"fmt"
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

// noFollow makes opening a cache entry refuse a symlink planted in its place.
const noFollow = syscall.O_NOFOLLOW

// nonBlock makes open return at once on a FIFO with no writer (or a device
// that would wait), so the type check after it can refuse the file.
const nonBlock = syscall.O_NONBLOCK

// openRegular opens path for reading only if it is a regular file. It never
// blocks: the path is checked with stat before the open (opening some
// devices has side effects, even read-only, and the helper runs as root),
// opened non-blocking, and checked again on the open descriptor, which must
// be the file that was stat-ed. With follow false a symlink is refused. The
// error names path and what was found there.
func openRegular(path string, follow bool) (*os.File, fs.FileInfo, error) {
	stat, flags := os.Stat, os.O_RDONLY|nonBlock|syscall.O_CLOEXEC|syscall.O_NOCTTY
	if !follow {
		stat, flags = os.Lstat, flags|noFollow
	}
	before, err := stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, nil, &notRegularError{path: path, mode: before.Mode()}
	}
	f, err := os.OpenFile(path, flags, 0) //nolint:gosec // G304: reading the file the operator named is the point; it was checked above and is checked again below

	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || !os.SameFile(before, fi)) {
		err = fmt.Errorf("%s changed while it was being opened", path)
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}
