//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package creds

import "errors"

// tryLock is never reached here: openCache refuses to open a cache where
// folder privacy cannot be checked (see cacheSupported), so there is no
// cache to lock.
func (c *cache) tryLock(string) (unlock func(), err error) {
	return nil, errors.New("no token cache on this platform")
}
