package creds

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

const (
	// sweepRead caps the names read from the folder per sweep, and
	// sweepExamine the files looked at among them (from a random start,
	// so a large folder is covered over successive sweeps).
	sweepRead    = 512
	sweepExamine = 64

	// staleAge is when a lock file, failure marker, temporary file or
	// unreadable entry is old enough to remove: no exchange lasts that
	// long, and no entry is trusted for that long.
	staleAge = 2 * maxTrustedLifetime
)

// sweep removes, at now, a bounded number of stale files: entries whose
// trusted expiry has passed (with their lock), and lock files, failure
// markers, temporary files and unreadable entries older than staleAge. Only
// regular files of ours named by the cache's scheme are removed; a link is
// never followed. An entry or lock file is removed only while its lock is
// held (taken without waiting; busy means skip), so it never races an
// exchange. The entry and lock file of the key just stored (stored; its
// lock is ours) are passed over: reading back a fresh entry was most of a
// sweep's work. It returns how many files it removed.
func (c *cache) sweep(now time.Time, stored string) int {
	d, err := c.root.Open(".")
	if err != nil {
		return 0
	}
	names, _ := d.Readdirnames(sweepRead)
	_ = d.Close()
	n := len(names)
	if n == 0 {
		return 0
	}
	removed := 0
	start := rand.IntN(n) //nolint:gosec // G404: spreads the sweep over the folder; nothing depends on it being unpredictable
	for i := range min(n, sweepExamine) {
		if name := names[(start+i)%n]; name != stored+entrySuffix && name != stored+lockSuffix {
			removed += c.sweepOne(name, now)
		}
	}
	if removed > 0 {
		c.logf("cache: swept %d stale files", removed)
	}
	return removed
}

// sweepOne removes name if it is stale, and returns how many files went.
func (c *cache) sweepOne(name string, now time.Time) int {
	key, kind, ok := splitCacheName(name)
	if !ok {
		return 0
	}
	fi, err := c.root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() || !ownedByMe(fi) {
		return 0
	}
	old := now.Sub(fi.ModTime()) > staleAge
	switch kind {
	case tmpSuffix, failSuffix:
		if old && c.removeOurs(name) {
			return 1
		}
	case entrySuffix:
		stale := func() bool {
			tok, err := c.readEntry(name)
			return (err == nil && !tok.Expiry.After(now)) || (err != nil && old)
		}
		if stale() {
			return c.removeLocked(key, stale)
		}
	case lockSuffix:
		orphan := func() bool {
			_, err := c.root.Lstat(key + entrySuffix)
			return errors.Is(err, fs.ErrNotExist)
		}
		if old && orphan() {
			return c.removeLocked(key, orphan)
		}
	}
	return 0
}

// removeLocked takes key's lock without waiting and, if stale still holds
// under it, removes key's entry and lock file. If another process holds
// the lock (it is exchanging), nothing is removed.
func (c *cache) removeLocked(key string, stale func() bool) int {
	unlock, err := c.tryLock(key + lockSuffix)
	if err != nil || unlock == nil {
		return 0
	}
	defer unlock()
	if !stale() {
		return 0
	}
	n := 0
	if c.removeOurs(key + entrySuffix) {
		n++
	}
	// Waiters that opened this lock file see it unlinked and start over.
	if c.removeOurs(key + lockSuffix) {
		n++
	}
	return n
}

// splitCacheName splits a name of the cache's scheme into its key and kind
// (entrySuffix, lockSuffix, failSuffix or tmpSuffix).
func splitCacheName(name string) (key, kind string, ok bool) {
	if len(name) <= 40 || !logsafe.IsLowerHex(name[:40]) {
		return "", "", false
	}
	key, rest := name[:40], name[40:]
	switch rest {
	case entrySuffix, lockSuffix, failSuffix:
		return key, rest, true
	}
	// .<16 hex>.tmp, as writeAtomic names them
	if len(rest) == 1+16+len(tmpSuffix) && rest[0] == '.' && logsafe.IsLowerHex(rest[1:17]) && strings.HasSuffix(rest, tmpSuffix) {
		return key, tmpSuffix, true
	}
	return "", "", false
}
