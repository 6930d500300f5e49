//go:build unix

package creds

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCacheSweep(t *testing.T) {
	t.Parallel()
	now := time.Now().Add(24 * time.Hour)
	old := now.Add(-staleAge - time.Minute)
	fresh := now.Add(-time.Minute)
	c := newTestCache(t)
	at := func(name string) string { return filepath.Join(c.dir, name) }
	touch := func(name string, mtime time.Time) {
		t.Helper()
		if _, err := os.Lstat(at(name)); os.IsNotExist(err) {
			require.NoError(t, os.WriteFile(at(name), nil, 0o600))
		}
		require.NoError(t, os.Chtimes(at(name), mtime, mtime))
	}
	entry := func(key string, exp time.Time) {
		t.Helper()
		writeEntry(t, c.path(key), cacheEntry{Token: testToken(t, exp).Raw, Expiry: exp})
		touch(key+".json", exp.Add(-time.Hour))
		touch(key+".lock", exp.Add(-time.Hour))
	}
	expired, live, busy := cacheKey("expired"), cacheKey("live"), cacheKey("busy")
	orphanOld, orphanFresh, corrupt := cacheKey("orphan old"), cacheKey("orphan fresh"), cacheKey("corrupt")
	entry(expired, now.Add(-time.Second))
	entry(live, now.Add(30*time.Minute))
	entry(busy, now.Add(-time.Hour))
	touch(orphanOld+".lock", old)
	touch(orphanFresh+".lock", fresh)
	require.NoError(t, os.WriteFile(at(corrupt+".json"), []byte("{"), 0o600))
	touch(corrupt+".json", old)
	touch(corrupt+".lock", old)
	touch(live+".0123456789abcdef.tmp", old)
	touch(live+".fedcba9876543210.tmp", fresh)
	touch(live+".fail", old)
	touch(expired+".fail", fresh)

	// Stale by every rule, but not ours to remove.
	outside := filepath.Join(t.TempDir(), "target.json")
	writeEntry(t, outside, cacheEntry{Token: testToken(t, now.Add(-time.Hour)).Raw, Expiry: now.Add(-time.Hour)})
	linked := cacheKey("linked")
	require.NoError(t, os.Symlink(outside, c.path(linked)))
	foreign := []string{
		"notes.txt",
		"ABCDEF0123456789ABCDEF0123456789ABCDEF01.lock", // upper case
		expired + ".json.bak",
		expired + ".lock.tmp",
		expired[:39] + ".lock",
		expired + ".xyz.tmp",
	}
	for _, name := range foreign {
		touch(name, old)
	}
	holder := flock.New(at(busy + ".lock"))
	require.NoError(t, holder.Lock())
	defer func() { _ = holder.Unlock() }()

	removed := c.sweep(now, "")

	gone := []string{expired + ".json", expired + ".lock", orphanOld + ".lock", corrupt + ".json", corrupt + ".lock",
		live + ".0123456789abcdef.tmp", live + ".fail"}
	kept := append([]string{live + ".json", live + ".lock", busy + ".json", busy + ".lock",
		orphanFresh + ".lock", live + ".fedcba9876543210.tmp", expired + ".fail"}, foreign...)
	for _, name := range gone {
		assert.NoFileExists(t, at(name), "stale: removed")
	}
	for _, name := range kept {
		assert.FileExists(t, at(name), "fresh, busy or foreign: kept")
	}
	assert.FileExists(t, outside, "a link's target is never touched")
	_, err := os.Lstat(c.path(linked))
	assert.NoError(t, err, "nor the link")
	assert.Equal(t, len(gone), removed)
}

func TestCacheSweepIsBoundedAndRunsAfterAStore(t *testing.T) {
	t.Parallel()
	now := time.Now().Add(24 * time.Hour)
	old := now.Add(-staleAge - time.Minute)
	c := newTestCache(t)
	const n = 3 * sweepExamine
	for i := range n {
		name := filepath.Join(c.dir, fmt.Sprintf("%s.%016x.tmp", cacheKey("k"), i))
		require.NoError(t, os.WriteFile(name, nil, 0o600))
		require.NoError(t, os.Chtimes(name, old, old))
	}
	count := func() int {
		names, err := filepath.Glob(filepath.Join(c.dir, "*.tmp"))
		require.NoError(t, err)
		return len(names)
	}

	assert.Equal(t, sweepExamine, c.sweep(now, ""), "at most sweepExamine files per sweep")
	assert.Equal(t, n-sweepExamine, count())

	key := cacheKey("stored")
	require.NoError(t, c.storeAt(key, testToken(t, now.Add(time.Hour)), now))
	left := count()
	assert.Less(t, left, n-sweepExamine, "a store sweeps")
	assert.GreaterOrEqual(t, left, n-2*sweepExamine, "a bounded number")
	_, ok := c.load(key, now)
	assert.True(t, ok)
	assert.Equal(t, left, count(), "a cache hit does not sweep")
}

// TestStoreSweepsItsOwnKeysLeftovers: a store's sweep passes over its own
// entry and lock file (a saving only: it would keep them anyway, the entry
// fresh and the lock held, so no test can see the skip), but not a
// temporary file of the same key that a killed process left; with one
// identity per folder, nothing else would ever remove it.
func TestStoreSweepsItsOwnKeysLeftovers(t *testing.T) {
	t.Parallel()
	now := time.Now().Add(24 * time.Hour)
	old := now.Add(-staleAge - time.Minute)
	c := newTestCache(t)
	key := cacheKey("only")
	tmp := filepath.Join(c.dir, key+".00000000000000ff.tmp")
	require.NoError(t, os.WriteFile(tmp, nil, 0o600))
	require.NoError(t, os.Chtimes(tmp, old, old))

	require.NoError(t, c.storeAt(key, testToken(t, now.Add(time.Hour)), now))
	assert.NoFileExists(t, tmp)
	_, ok := c.load(key, now)
	assert.True(t, ok, "and the entry just stored stays")
}
