//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package creds

import (
	"os"
	"path/filepath"

	"github.com/gofrs/flock"
)

// tryLock makes one non-blocking attempt at an exclusive lock on the lock
// file called name; a nil unlock and nil error mean another process holds
// it. gofrs/flock opens by path, so the file is first made (or checked)
// relative to the folder, flock then opens it without O_CREATE, and the
// descriptor it locked must be the file that was checked.
func (c *cache) tryLock(name string) (unlock func(), err error) {
	f, fi, err := c.openLockFile(name)
	if err != nil {
		return nil, err
	}
	f.Close()
	fl := flock.New(filepath.Join(c.dir, name), flock.SetFlag(os.O_RDWR|noFollow|nonBlock), flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil || !ok {
		return nil, err
	}
	locked, err := fl.Stat()
	if err == nil {
		err = checkPrivateFile(fl.Path(), fi, locked)
	}
	if err != nil {
		fl.Unlock()
		return nil, err
	}
	if !c.stillLinked(name, fi) {
		fl.Unlock()
		return nil, nil
	}
	return func() { fl.Unlock() }, nil
}
