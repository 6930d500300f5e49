//go:build unix

package creds

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A waiter asks ready between its attempts at a held lock and stops, with
// errReady and no lock, once ready says the holder's entry is there.
func TestLockWaitStopsWhenReady(t *testing.T) {
	t.Parallel()
	c := newTestCache(t)
	key := cacheKey("ready")
	ctx := context.Background()
	holder, err := c.lockWait(ctx, key, 0, nil)
	require.NoError(t, err)
	defer holder()

	asked := 0
	unlock, err := c.lockWait(ctx, key, time.Minute, func() bool {
		asked++
		return asked == 3
	})
	require.ErrorIs(t, err, errReady)
	assert.Nil(t, unlock)
	assert.Equal(t, 3, asked, "ready is asked once per attempt at the held lock")

	_, err = c.lockWait(ctx, key, 0, nil)
	assert.ErrorIs(t, err, errLockWait, "the holder still holds the lock")

	// A free lock is taken without asking.
	free := cacheKey("free")
	unlock, err = c.lockWait(ctx, free, time.Minute, func() bool {
		t.Error("ready asked about a free lock")
		return true
	})
	require.NoError(t, err)
	unlock()
}

// A get that waits on another process's exchange serves that process's
// entry as soon as it is written, while the lock is still held: a fleet of
// waiters must not take the lock in turn, nor exchange once their budget
// runs out.
func TestWaiterServesTheHoldersEntry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.Timeout = 4 * time.Second
	holdLock(t, f, f.cfg.Identity)
	h := f.helper(t)

	type answer struct {
		secret string
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		_, secret, err := h.Get(f.host)
		done <- answer{secret, err}
	}()
	time.Sleep(100 * time.Millisecond) // the get is waiting on the lock by now

	amb, err := ParseAmbientToken(f.ambient, "test")
	require.NoError(t, err)
	c, err := openCache(f.cfg.CacheDir, t.Logf)
	require.NoError(t, err)
	defer func() { _ = c.close() }()
	tok := testToken(t, time.Now().Add(30*time.Minute))
	c.keep(h.cacheKey(f.cfg.Identity, amb.Issuer, amb.Subject), tok, time.Now())

	a := <-done
	require.NoError(t, a.err)
	assert.True(t, a.secret == tok.Raw, "the get did not serve the holder's entry")
	assert.Equal(t, 0, f.sb.STS.Exchanges())
}
