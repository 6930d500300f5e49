//go:build unix

package creds

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

// holdLock takes the exchange lock for the fixture's key from a separate
// open file, as a frozen process holding it would, until the test ends.
func holdLock(t *testing.T, f *fixture, identity string) {
	t.Helper()
	amb, err := ParseAmbientToken(f.ambient, "test")
	require.NoError(t, err)
	key := cacheKey(f.cfg.Issuer, identity, f.cfg.Audience, amb.Issuer, amb.Subject)
	require.NoError(t, os.MkdirAll(f.cfg.CacheDir, 0o700))
	lf, err := os.OpenFile(filepath.Join(f.cfg.CacheDir, key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	require.NoError(t, err)
	require.NoError(t, syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	t.Cleanup(func() { _ = lf.Close() })
}

// A process that holds the exchange lock and is frozen used to make every
// other caller wait until its own deadline and fail, with a healthy STS.
// Now the wait is bounded by part of the deadline, then the caller
// exchanges without the cache.
func TestFrozenLockHolderCannotTakeEveryoneDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.Timeout = 2 * time.Second
	holdLock(t, f, f.cfg.Identity)

	var logged strings.Builder
	h, err := New(f.cfg, WithLogger(func(format string, _ ...any) {
		logged.WriteString(format + "\n")
	}))
	require.NoError(t, err)
	user, secret, err := h.Get(f.host)
	require.NoError(t, err, "a frozen lock holder failed the call")
	assert.Equal(t, Username, user)
	_, err = f.sb.STS.VerifyToken(secret, sandbox.RegistryAudience)
	require.NoError(t, err)
	assert.Equal(t, 1, f.sb.STS.Exchanges())
	assert.Contains(t, logged.String(), "exchanging without the cache")
}

// Under a persistently failing STS, a burst of callers that all miss the
// cache sees one exchange (with its retries) and its failure, shared with
// every caller that was waiting for it, instead of fifty serial exchanges
// each retrying until the deadline.
func TestBurstUnderAFailingSTSSharesOneFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Every attempt fails; the first is slow, so the whole burst is queued
	// on the lock before it ends.
	f.sb.STS.InjectFaults(sandbox.Fault{Status: 503, Delay: 2 * time.Second})
	for range 200 {
		f.sb.STS.InjectFaults(sandbox.Fault{Status: 503})
	}
	const callers = 50
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := New(f.cfg)
			if err == nil {
				_, _, err = h.Get(f.host)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	shared := 0
	for i, err := range errs {
		require.Error(t, err, "caller %d", i)
		assert.ErrorIs(t, err, ErrSTSUnreachable, "caller %d keeps the failure's kind", i)
		assertNoSecret(t, err.Error(), f.ambient, "shared failure")
		if strings.Contains(err.Error(), "another process failed so while this one waited") {
			shared++
		}
	}
	assert.Equal(t, callers-1, shared, "every caller but the one that exchanged shared its failure")
	assert.Equal(t, 3, f.sb.STS.Requests(), "one exchange of three attempts for the whole burst")

	// A caller that comes after the failure tries again for itself.
	h, err := New(f.cfg)
	require.NoError(t, err)
	_, _, err = h.Get(f.host)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "another process failed so", "a later caller asked the STS itself")
	assert.Equal(t, 6, f.sb.STS.Requests())
}

// A token that claims to live for years is trusted for an hour: neither the
// cache nor the kubelet keep it longer.
func TestIssuedTokenLifetimeIsCapped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sb.STS.SetTokenLifetime(10 * 365 * 24 * time.Hour)
	h := f.helper(t)
	amb, err := h.findAmbient(t.Context())
	require.NoError(t, err)
	tok, err := h.tokenFor(t.Context(), amb, f.cfg.Identity)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(maxTrustedLifetime), tok.Expiry, time.Minute)

	// Served from the cache with the capped expiry, and re-exchanged once
	// the capped life is within the margin.
	now := time.Now().Add(50 * time.Minute)
	h = f.helper(t, WithClock(func() time.Time { return now }))
	again, err := h.tokenFor(t.Context(), amb, f.cfg.Identity)
	require.NoError(t, err)
	assert.True(t, again.Raw == tok.Raw, "served from the cache")
	assert.Equal(t, 1, f.sb.STS.Exchanges())
}
