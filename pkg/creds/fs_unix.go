//go:build unix

package creds

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

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

// atCWD makes openAt take name as a path, as open(2) does.
const atCWD = unix.AT_FDCWD

// openAt opens name relative to the folder descriptor dir, as openat(2)
// does, outside Go's poller: os.OpenFile and os.Root register every file
// with it, and the first file starts it (an epoll instance and an eventfd)
// though a regular file's reads never wait on it. Together with the timer a
// deadline arms, that made a cached get about 1.5% slower
// (docs/benchmarks.md). O_NONBLOCK in flag keeps the open itself from
// blocking; it is cleared on the descriptor, which the caller checks is a
// regular file before reading it.
func openAt(dir int, name string, flag int, perm uint32) (*os.File, error) {
	fd, err := -1, error(unix.EINTR)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Openat(dir, name, flag|unix.O_CLOEXEC, perm)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if flag&unix.O_NONBLOCK != 0 {
		// os.NewFile would register a non-blocking descriptor.
		if err := unix.SetNonblock(fd, false); err != nil {
			_ = unix.Close(fd)
			return nil, &fs.PathError{Op: "fcntl", Path: name, Err: err}
		}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openDirAgain opens the folder name, relative to the folder descriptor at
// (or atCWD), a second time, for openAt, and proves it the folder fi
// describes. fi must be from a descriptor that is still open, so its inode
// cannot have been freed and reused: the new descriptor is the checked
// folder or nothing. name's last component is never followed: a folder
// whose links are to be followed is given as path/. and path names it in
// messages.
func openDirAgain(at int, name, path string, fi fs.FileInfo) (int, error) {
	want, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, fmt.Errorf("cannot tell which folder %s is", logsafe.Quote(path, pathLimit))
	}
	// O_DIRECTORY fails on anything but a folder before opening it, so a
	// FIFO never blocks.
	fd, err := -1, error(unix.EINTR)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Openat(at, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || uint64(st.Dev) != uint64(want.Dev) || uint64(st.Ino) != uint64(want.Ino) { //nolint:unconvert // their types differ between platforms
		_ = unix.Close(fd)
		return -1, fmt.Errorf("%s changed while it was being opened", logsafe.Quote(path, pathLimit))
	}
	return fd, nil
}

// closeDir closes a descriptor from openDirAgain.
func closeDir(fd int) error { return unix.Close(fd) }
