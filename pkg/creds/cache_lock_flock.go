//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package creds

import (
	"errors"
	"syscall"
)

// tryLock makes one non-blocking attempt at an exclusive lock on the lock
// file called name; a nil unlock and nil error mean another process holds
// it. The file is opened here, relative to the checked folder, rather than
// by gofrs/flock: flock can only open a path (whole, so a swapped parent
// component redirects it, and with O_CREATE through a planted link), and
// cannot take a descriptor that was checked.
func (c *cache) tryLock(name string) (unlock func(), err error) {
	f, fi, err := c.openLockFile(name)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		_ = f.Close()
		return nil, nil
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if !c.stillLinked(name, fi) {
		_ = f.Close() // closing releases the lock
		return nil, nil
	}
	// Closing releases the lock; no LOCK_UN by number, which a second
	// call could aim at a reused descriptor.
	return func() { _ = f.Close() }, nil
}
