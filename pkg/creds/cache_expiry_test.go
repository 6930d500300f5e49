//go:build unix

package creds

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeEntry writes an entry by hand, as another version or a bug might.
func writeEntry(t *testing.T, path string, e any) {
	t.Helper()
	b, err := json.Marshal(e)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

func TestCacheTrustsABoundedLifetime(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	years := testToken(t, now.AddDate(10, 0, 0))

	t.Run("a long-lived token is trusted for maxTrustedLifetime", func(t *testing.T) {
		c := newTestCache(t)
		key := cacheKey("long")
		require.NoError(t, c.storeAt(key, years, now))
		got, ok := c.load(key, now)
		require.True(t, ok)
		assert.Equal(t, years.Raw, got.Raw)
		assert.True(t, got.Expiry.Equal(now.Add(maxTrustedLifetime)), "expiry capped, got %s", got.Expiry)
		_, ok = c.load(key, now.Add(maxTrustedLifetime-Margin))
		assert.False(t, ok, "and not served past the cap")
	})

	t.Run("the earlier of the entry's expiry and the JWT's exp", func(t *testing.T) {
		c := newTestCache(t)
		key := cacheKey("jwt earlier")
		short := testToken(t, now.Add(20*time.Minute))
		writeEntry(t, c.path(key), cacheEntry{Token: short.Raw, Expiry: now.Add(time.Hour)})
		got, ok := c.load(key, now)
		require.True(t, ok)
		assert.True(t, got.Expiry.Equal(short.Expiry))
	})

	for name, e := range map[string]any{
		"expiry beyond the cap":   cacheEntry{Token: years.Raw, Expiry: now.AddDate(10, 0, 0)},
		"no expiry (old format)":  map[string]string{"token": years.Raw},
		"expiry that is not time": map[string]string{"token": years.Raw, "expiry": "soon"},
	} {
		t.Run(name, func(t *testing.T) {
			c := newTestCache(t)
			key := cacheKey(name)
			writeEntry(t, c.path(key), e)
			_, ok := c.load(key, now)
			assert.False(t, ok, "a miss")
			require.NoError(t, c.storeAt(key, years, now), "and replaced")
			_, ok = c.load(key, now)
			assert.True(t, ok)
		})
	}
}
