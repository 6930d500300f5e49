//go:build unix

package dockerconfig

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// readFlags open a config file without following a link, without waiting
// on a FIFO or device, without making it the controlling terminal and
// without leaking it to a child process.
const readFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_NOCTTY | syscall.O_CLOEXEC

// writeFlags open the temporary file: not leaked to a child process.
const writeFlags = syscall.O_NOFOLLOW | syscall.O_CLOEXEC

// checkOwner refuses a file that belongs to another user: replacing it
// would take it over, and the user whose config it is should run this.
func checkOwner(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("cannot tell who owns %s", quote(path))
	}
	if uid := int(st.Uid); uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("%s belongs to user id %d, not to this user (id %d); run configure-docker as that user", quote(path), uid, os.Geteuid())
	}
	return nil
}

// checkFolder refuses a folder another user could swap files in: it must
// belong to this user or root and not be writable by others. (Group write
// is allowed: with a private group per user, as many systems set up,
// it is the default for new folders.)
func checkFolder(root *os.Root, dir string) error {
	fi, err := root.Stat(".")
	if err != nil {
		return fmt.Errorf("cannot use the folder %s: %w", quote(dir), unwrapPath(err))
	}
	if err := checkOwner(dir, fi); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("the folder %s is writable by every user (mode %04o), so anyone could swap the file in it; run chmod o-w %s", quote(dir), fi.Mode().Perm(), quote(dir))
	}
	return nil
}
