//go:build unix && !aix

package creds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// mkfifo makes a FIFO (syscall.Mkfifo is missing on some unix ports).
func mkfifo(path string, perm uint32) error { return syscall.Mknod(path, syscall.S_IFIFO|perm, 0) }

// within runs f and fails the test instead of hanging if it blocks.
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("blocked: a FIFO or lock was waited on")
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	return fi.Mode()
}

func TestOpenCacheNeverRemodesAFolderItDidNotMake(t *testing.T) {
	t.Parallel()
	tok := testToken(t, time.Now().Add(time.Hour))
	for name, perm := range map[string]os.FileMode{
		"shared like /tmp": 0o777 | os.ModeSticky,
		"group-readable":   0o750,
		"world-readable":   0o755,
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shared")
			require.NoError(t, os.Mkdir(dir, 0o700))
			require.NoError(t, os.Chmod(dir, perm))
			c, err := openCache(dir, t.Logf)
			require.NoError(t, err)
			defer func() { _ = c.close() }()
			assert.Equal(t, os.ModeDir|perm, mode(t, dir), "mode (and sticky bit) kept")

			key := cacheKey(name)
			require.NoError(t, c.storeAt(key, tok, time.Now()))
			priv := filepath.Join(dir, privateName())
			assert.Equal(t, os.ModeDir|0o700, mode(t, priv))
			assert.FileExists(t, filepath.Join(priv, key+".json"), "tokens go to the private subfolder")
			assert.NoFileExists(t, filepath.Join(dir, key+".json"))

			// The next process finds and uses the same subfolder.
			c2, err := openCache(dir, t.Logf)
			require.NoError(t, err)
			defer func() { _ = c2.close() }()
			_, ok := c2.load(key, time.Now())
			assert.True(t, ok)
		})
	}

	t.Run("missing folder is made 0700 and used", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "cache")
		c, err := openCache(dir, t.Logf)
		require.NoError(t, err)
		defer func() { _ = c.close() }()
		assert.Equal(t, dir, c.dir)
		assert.Equal(t, os.ModeDir|0o700, mode(t, dir))
	})

	t.Run("not a folder", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		_, err := openCache(file, t.Logf)
		assert.Error(t, err, "a file where the folder should be")
		_, err = openCache(filepath.Join(file, "sub"), t.Logf)
		assert.Error(t, err, "a folder that cannot be made")
		fifo := filepath.Join(t.TempDir(), "fifo")
		require.NoError(t, mkfifo(fifo, 0o600))
		within(t, func() {
			_, err = openCache(fifo, t.Logf)
		})
		assert.Error(t, err, "a FIFO where the folder should be fails at once")
	})
}

func TestOpenCacheRefusesAPlantedPrivateSubfolder(t *testing.T) {
	t.Parallel()
	for name, plant := range map[string]func(t *testing.T, priv string){
		"loose mode": func(t *testing.T, priv string) {
			require.NoError(t, os.Mkdir(priv, 0o700))
			require.NoError(t, os.Chmod(priv, 0o755))
		},
		"symlink to a private folder": func(t *testing.T, priv string) {
			target := filepath.Join(t.TempDir(), "elsewhere")
			require.NoError(t, os.Mkdir(target, 0o700))
			require.NoError(t, os.Symlink(target, priv))
		},
		"dangling symlink": func(t *testing.T, priv string) {
			require.NoError(t, os.Symlink(filepath.Join(t.TempDir(), "made"), priv))
		},
		"a file": func(t *testing.T, priv string) { require.NoError(t, os.WriteFile(priv, nil, 0o600)) },
		"a FIFO": func(t *testing.T, priv string) { require.NoError(t, mkfifo(priv, 0o600)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shared")
			require.NoError(t, os.Mkdir(dir, 0o700))
			require.NoError(t, os.Chmod(dir, 0o777|os.ModeSticky))
			priv := filepath.Join(dir, privateName())
			plant(t, priv)
			before := mode(t, priv)
			var err error
			within(t, func() { _, err = openCache(dir, t.Logf) })
			assert.Error(t, err, "the cache is disabled")
			assert.Equal(t, before, mode(t, priv), "the plant is left as it was")
			if link, lerr := os.Readlink(priv); lerr == nil && name == "dangling symlink" {
				assert.NoFileExists(t, link, "a link's target is never made")
				assert.NoDirExists(t, link)
			}
		})
	}
}

func TestCacheForeignOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	c := newTestCache(t)
	key := cacheKey("foreign")
	require.NoError(t, c.storeAt(key, testToken(t, time.Now().Add(time.Hour)), time.Now()))
	require.NoError(t, os.Chown(c.path(key), 65534, 65534))
	_, ok := c.load(key, time.Now())
	assert.False(t, ok, "an entry owned by someone else is not trusted")

	// Someone else's folder is left as it is, with nothing put in it: the
	// cache is off.
	dir := filepath.Join(t.TempDir(), "theirs")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chown(dir, 65534, 65534))
	_, err := openCache(dir, t.Logf)
	assert.ErrorContains(t, err, "belongs to user id 65534")
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left, "nothing written in another user's folder")
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.ModeDir|0o700, fi.Mode())
	assert.Equal(t, uint32(65534), fi.Sys().(*syscall.Stat_t).Uid, "owner unchanged")

	// Root's shared folder gets a private subfolder; one that someone else
	// made there disables the cache.
	shared := filepath.Join(t.TempDir(), "shared")
	require.NoError(t, os.Mkdir(shared, 0o777))
	require.NoError(t, os.Chmod(shared, 0o777|os.ModeSticky))
	require.NoError(t, os.Mkdir(filepath.Join(shared, privateName()), 0o700))
	require.NoError(t, os.Chown(filepath.Join(shared, privateName()), 65534, 65534))
	_, err = openCache(shared, t.Logf)
	assert.ErrorContains(t, err, "another user")
}

func TestOpenCacheFollowsASymlinkedFolderHoweverSpelled(t *testing.T) {
	t.Parallel()
	tok := testToken(t, time.Now().Add(time.Hour))
	spellings := func(link string) []string { return []string{link, link + "/", link + "/."} }

	t.Run("to a private folder: used as it is", func(t *testing.T) {
		base := t.TempDir()
		target := filepath.Join(base, "target")
		require.NoError(t, os.Mkdir(target, 0o700))
		link := filepath.Join(base, "link")
		require.NoError(t, os.Symlink(target, link))
		for i, dir := range spellings(link) {
			c, err := openCache(dir, t.Logf)
			require.NoError(t, err, dir)
			key := cacheKey(fmt.Sprint(i))
			require.NoError(t, c.storeAt(key, tok, time.Now()))
			_ = c.close()
			assert.FileExists(t, filepath.Join(target, key+".json"), dir)
		}
	})

	t.Run("to a shared folder: private subfolder in the target", func(t *testing.T) {
		base := t.TempDir()
		target := filepath.Join(base, "target")
		require.NoError(t, os.Mkdir(target, 0o700))
		require.NoError(t, os.Chmod(target, 0o777|os.ModeSticky))
		link := filepath.Join(base, "link")
		require.NoError(t, os.Symlink(target, link))
		for _, dir := range spellings(link) {
			c, err := openCache(dir, t.Logf)
			require.NoError(t, err, dir)
			_ = c.close()
			assert.Equal(t, os.ModeDir|0o777|os.ModeSticky, mode(t, target), dir)
			assert.Equal(t, os.ModeDir|0o700, mode(t, filepath.Join(target, privateName())), dir)
		}
	})

	t.Run("to nothing or a FIFO: refused", func(t *testing.T) {
		base := t.TempDir()
		dangling := filepath.Join(base, "dangling")
		require.NoError(t, os.Symlink(filepath.Join(base, "missing"), dangling))
		fifo := filepath.Join(base, "fifo")
		require.NoError(t, mkfifo(fifo, 0o600))
		toFifo := filepath.Join(base, "tofifo")
		require.NoError(t, os.Symlink(fifo, toFifo))
		for _, dir := range append(spellings(dangling), spellings(toFifo)...) {
			within(t, func() {
				_, err := openCache(dir, t.Logf)
				assert.Error(t, err, dir)
			})
		}
		assert.NoDirExists(t, filepath.Join(base, "missing"), "a dangling link's target is never made")
	})
}

func TestCacheEntryPlantsAreAPromptMiss(t *testing.T) {
	t.Parallel()
	secret := testToken(t, time.Now().Add(time.Hour))
	outside := filepath.Join(t.TempDir(), "outside.json")
	b, err := json.Marshal(cacheEntry{Token: secret.Raw, Expiry: secret.Expiry})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(outside, b, 0o600))
	for name, plant := range map[string]func(t *testing.T, p string){
		"FIFO":                  func(t *testing.T, p string) { require.NoError(t, mkfifo(p, 0o600)) },
		"symlink out":           func(t *testing.T, p string) { require.NoError(t, os.Symlink(outside, p)) },
		"symlink in the folder": func(t *testing.T, p string) { require.NoError(t, os.Symlink("other.json", p)) },
		"symlink to a device":   func(t *testing.T, p string) { require.NoError(t, os.Symlink("/dev/zero", p)) },
		"a folder":              func(t *testing.T, p string) { require.NoError(t, os.Mkdir(p, 0o700)) },
		"entry open to others": func(t *testing.T, p string) {
			require.NoError(t, os.WriteFile(p, b, 0o644))
			require.NoError(t, os.Chmod(p, 0o644))
		},
	} {
		t.Run(name, func(t *testing.T) {
			var logs strings.Builder
			var mu sync.Mutex
			c, err := openCache(filepath.Join(t.TempDir(), "cache"), func(f string, a ...any) {
				mu.Lock()
				defer func() { mu.Unlock() }()
				fmt.Fprintf(&logs, f+"\n", a...)
			})
			require.NoError(t, err)
			defer func() { _ = c.close() }()
			require.NoError(t, os.WriteFile(filepath.Join(c.dir, "other.json"), b, 0o600))
			key := cacheKey(name)
			plant(t, c.path(key))
			within(t, func() {
				_, ok := c.load(key, time.Now())
				assert.False(t, ok, "a planted %s is a miss", name)
			})
			assert.Contains(t, logs.String(), "ignoring entry")
			assert.False(t, strings.Contains(logs.String(), secret.Raw), "token leaked into the log")
		})
	}
}

func TestCacheLockRefusesPlants(t *testing.T) {
	t.Parallel()
	for name, plant := range map[string]func(t *testing.T, p, outside string){
		"symlink out": func(t *testing.T, p, outside string) { require.NoError(t, os.Symlink(outside, p)) },
		"symlink in":  func(t *testing.T, p, _ string) { require.NoError(t, os.Symlink("made.lock", p)) },
		"FIFO":        func(t *testing.T, p, _ string) { require.NoError(t, mkfifo(p, 0o600)) },
		"open to others": func(t *testing.T, p, _ string) {
			require.NoError(t, os.WriteFile(p, nil, 0o600))
			require.NoError(t, os.Chmod(p, 0o666))
		},
		"a folder": func(t *testing.T, p, _ string) { require.NoError(t, os.Mkdir(p, 0o700)) },
	} {
		t.Run(name, func(t *testing.T) {
			c := newTestCache(t)
			outside := filepath.Join(t.TempDir(), "made-by-root")
			key := cacheKey(name)
			lockPath := filepath.Join(c.dir, key+".lock")
			plant(t, lockPath, outside)
			within(t, func() {
				unlock, err := c.lockWait(context.Background(), key, time.Minute, nil)
				assert.Error(t, err, "no lock")
				assert.Nil(t, unlock)
			})
			assert.NoFileExists(t, outside, "a link's target is never created")
			assert.NoFileExists(t, filepath.Join(c.dir, "made.lock"), "nor one inside the folder")
		})
	}
}

func TestCacheLockWaitIsBounded(t *testing.T) {
	t.Parallel()
	c := newTestCache(t)
	key := cacheKey("stuck")
	// A stuck holder: another handle on the same lock file.
	unlock, err := c.lockWait(context.Background(), key, 0, nil)
	require.NoError(t, err)
	unlock()
	holder := flock.New(filepath.Join(c.dir, key+".lock"))
	require.NoError(t, holder.Lock())
	defer func() { _ = holder.Unlock() }()

	const maxWait = 50 * time.Millisecond
	start := time.Now()
	_, err = c.lockWait(context.Background(), key, maxWait, nil)
	assert.ErrorIs(t, err, errLockWait)
	assert.GreaterOrEqual(t, time.Since(start), maxWait, "waited the whole maxWait")

	_, err = c.lockWait(context.Background(), key, 0, nil)
	assert.ErrorIs(t, err, errLockWait, "no wait at all: one try")

	require.NoError(t, holder.Unlock())
	unlock, err = c.lockWait(context.Background(), key, maxWait, nil)
	require.NoError(t, err, "free once the holder lets go")
	unlock()
}

func TestCacheLockSurvivesItsFileBeingSwept(t *testing.T) {
	t.Parallel()
	c := newTestCache(t)
	key := cacheKey("swept")
	unlock, err := c.lockWait(context.Background(), key, 0, nil)
	require.NoError(t, err)
	// The holder's lock file is unlinked (as a sweep does under the lock)
	// and a new one appears: a lock on the old file excludes no one.
	require.NoError(t, os.Remove(filepath.Join(c.dir, key+".lock")))
	second, err := c.lockWait(context.Background(), key, 0, nil)
	require.NoError(t, err, "the new file is free")
	_, err = c.lockWait(context.Background(), key, 0, nil)
	assert.ErrorIs(t, err, errLockWait, "and now held")
	second()
	unlock()
}

func TestCacheFailureMarker(t *testing.T) {
	t.Parallel()
	c := newTestCache(t)
	key := cacheKey("failing")
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	msg := "the STS is unreachable: 503 Service Unavailable"

	_, ok := c.loadFailure(key, t0, t0.Add(time.Hour))
	assert.False(t, ok, "no marker")
	require.NoError(t, c.storeFailure(key, msg, t0.Add(time.Second)))
	assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(c.dir, key+".fail")))

	got, ok := c.loadFailure(key, t0, t0.Add(2*time.Second))
	assert.True(t, ok, "a caller that waited since before the failure shares it")
	assert.Equal(t, msg, got)
	_, ok = c.loadFailure(key, t0.Add(time.Second), t0.Add(2*time.Second))
	assert.False(t, ok, "one that started waiting at the same instant tries afresh")
	_, ok = c.loadFailure(key, t0.Add(2*time.Second), t0.Add(3*time.Second))
	assert.False(t, ok, "a later arrival tries afresh")
	_, ok = c.loadFailure(key, t0.Add(-time.Hour), t0)
	assert.False(t, ok, "a marker dated after now (the clock went back) is ignored")

	require.NoError(t, c.storeAt(key, testToken(t, t0.Add(time.Hour)), t0.Add(3*time.Second)))
	assert.NoFileExists(t, filepath.Join(c.dir, key+".fail"), "a success clears the marker")

	// A planted marker is not trusted.
	outside := filepath.Join(t.TempDir(), "planted.fail")
	b, err := json.Marshal(failureMarker{Error: "planted", At: t0.Add(time.Second)})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(outside, b, 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(c.dir, key+".fail")))
	_, ok = c.loadFailure(key, t0, t0.Add(2*time.Second))
	assert.False(t, ok)
}

// TestCacheBurstSharesOneFailure plays the flow Helper.Token follows: under
// a failing STS, callers waiting for the lock holder share its failure
// instead of each exchanging in turn; a caller arriving later tries again.
func TestCacheBurstSharesOneFailure(t *testing.T) {
	t.Parallel()
	c := newTestCache(t)
	key := cacheKey("burst")
	var tick atomic.Int64
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Millisecond) }
	var exchanges atomic.Int32
	get := func(ready func()) error {
		since := now()
		if ready != nil {
			ready()
		}
		unlock, err := c.lockWait(context.Background(), key, time.Minute, nil)
		if err != nil {
			return err
		}
		defer unlock()
		if _, ok := c.load(key, now()); ok {
			return nil
		}
		if msg, ok := c.loadFailure(key, since, now()); ok {
			return fmt.Errorf("shared: %s", msg)
		}
		exchanges.Add(1)
		err = fmt.Errorf("the STS is unreachable")
		require.NoError(t, c.storeFailure(key, err.Error(), now()))
		return err
	}

	// The holder fails only once every waiter is waiting.
	holder, err := c.lockWait(context.Background(), key, 0, nil)
	require.NoError(t, err)
	const n = 20
	var started, wg sync.WaitGroup
	started.Add(n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = get(started.Done) })
	}
	started.Wait()
	exchanges.Add(1)
	require.NoError(t, c.storeFailure(key, "the STS is unreachable", now()))
	holder()
	wg.Wait()
	for _, err := range errs {
		assert.EqualError(t, err, "shared: the STS is unreachable")
	}
	assert.Equal(t, int32(1), exchanges.Load(), "one exchange for the whole burst")

	assert.EqualError(t, get(nil), "the STS is unreachable", "a later caller tries afresh")
	assert.Equal(t, int32(2), exchanges.Load())
}

// Reads go through a second descriptor of the cache folder (openDirAgain),
// so it must be the folder openCache checked: a folder swapped in at the
// path, before or after it is opened, never serves an entry.
func TestCacheReadsOnlyTheFolderItChecked(t *testing.T) {
	t.Parallel()
	key := cacheKey("swapped")
	mine, theirs := testToken(t, time.Now().Add(time.Hour)), testToken(t, time.Now().Add(50*time.Minute))
	require.NotEqual(t, mine.Raw, theirs.Raw)
	base := t.TempDir()
	dir, other := filepath.Join(base, "cache"), filepath.Join(base, "other")
	for d, tok := range map[string]exchange.Token{dir: mine, other: theirs} {
		c, err := openCache(d, t.Logf)
		require.NoError(t, err)
		require.NoError(t, c.storeAt(key, tok, time.Now()))
		require.NoError(t, c.close())
	}

	t.Run("after it is opened", func(t *testing.T) {
		c, err := openCache(dir, t.Logf)
		require.NoError(t, err)
		defer func() { _ = c.close() }()
		require.NoError(t, os.Rename(dir, dir+".old"))
		require.NoError(t, os.Rename(other, dir))
		defer func() {
			require.NoError(t, os.Rename(dir, other))
			require.NoError(t, os.Rename(dir+".old", dir))
		}()
		// An open by path would find their entry, which Lstat through
		// the root does not describe: a miss. The folder checked has ours.
		tok, ok := c.load(key, time.Now())
		require.True(t, ok, "the entry in the folder checked was not read")
		assert.True(t, tok.Raw == mine.Raw, "an entry in the folder swapped in was read")
	})

	t.Run("between the two opens", func(t *testing.T) {
		root, fi, err := openDirRoot(dir)
		require.NoError(t, err)
		defer func() { _ = root.Close() }()
		fd, err := openDirAgain(atCWD, other+"/.", other, fi)
		assert.ErrorContains(t, err, "changed while it was being opened")
		assert.Equal(t, -1, fd)
		fd, err = openDirAgain(atCWD, dir+"/.", dir, fi)
		require.NoError(t, err)
		assert.NoError(t, closeDir(fd))
	})

	t.Run("a link in place of the private subfolder", func(t *testing.T) {
		// The subfolder is opened again by its bare name, never followed,
		// even to the very folder checked.
		root, fi, err := openDirRoot(dir)
		require.NoError(t, err)
		defer func() { _ = root.Close() }()
		require.NoError(t, os.Symlink(dir, filepath.Join(base, "link")))
		baseRoot, baseFI, err := openDirRoot(base)
		require.NoError(t, err)
		defer func() { _ = baseRoot.Close() }()
		parent, err := openDirAgain(atCWD, base+"/.", base, baseFI)
		require.NoError(t, err)
		defer func() { _ = closeDir(parent) }()
		// Followed, it would be the folder fi describes, and no error.
		_, err = openDirAgain(parent, "link", filepath.Join(base, "link"), fi)
		assert.True(t, errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP), "a link was followed: %v", err)
	})
}

// openat would follow a path out of the folder, which os.Root never did:
// only a file's own name is opened.
func TestCacheOpensOnlyNamesInItsFolder(t *testing.T) {
	t.Parallel()
	c, err := openCache(filepath.Join(t.TempDir(), "cache"), t.Logf)
	require.NoError(t, err)
	defer func() { _ = c.close() }()
	outside := filepath.Join(filepath.Dir(c.dir), "outside.json")
	require.NoError(t, os.WriteFile(outside, []byte("{}"), 0o600))
	for _, name := range []string{"../outside.json", outside, ".", "..", "", "/", "sub/x.json"} {
		_, err := c.readPrivate(name)
		assert.ErrorContains(t, err, "is not a file name", name)
	}
}
