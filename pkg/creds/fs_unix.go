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
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || !os.SameFile(before, fi)) {
		err = fmt.Errorf("%s changed while it was being opened", path)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}
