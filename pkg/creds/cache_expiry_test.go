//go:build unix

package creds

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
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

	t.Run("the entry's expiry, which is never later than the JWT's exp", func(t *testing.T) {
		c := newTestCache(t)
		key := cacheKey("jwt earlier")
		short := testToken(t, now.Add(20*time.Minute))
		require.NoError(t, c.storeAt(key, short, now))
		got, ok := c.load(key, now)
		require.True(t, ok)
		assert.True(t, got.Expiry.Equal(short.Expiry))
	})

	for name, e := range map[string]any{
		"expiry beyond the cap":  cacheEntry{Token: years.Raw, Expiry: now.AddDate(10, 0, 0)},
		"no expiry (old format)": map[string]string{"token": years.Raw},
		"expiry that is not time": struct {
			Token  string `json:"token"`
			Expiry string `json:"expiry"`
		}{years.Raw, "soon"},
		"a token that is no JWT": cacheEntry{Token: "not-a-jwt", Expiry: now.Add(time.Hour)},
		"an unsigned JWT":        cacheEntry{Token: years.Raw[:strings.LastIndexByte(years.Raw, '.')+1], Expiry: now.Add(time.Hour)},
		// Valid JSON, but not as this helper writes an entry.
		"the fields the other way round": struct {
			Expiry time.Time `json:"expiry"`
			Token  string    `json:"token"`
		}{now.Add(time.Hour), years.Raw},
		"an extra field": struct {
			cacheEntry
			Extra int `json:"extra"`
		}{cacheEntry{Token: years.Raw, Expiry: now.Add(time.Hour)}, 1},
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

// The entry reader matches bytes instead of decoding JSON; whatever it
// accepts, encoding/json must read the same way.
func FuzzParseEntryAgreesWithJSON(f *testing.F) {
	tok := testToken(f, time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC)).Raw
	for _, e := range []string{
		`{"token":"` + tok + `","expiry":"2030-01-01T01:00:00Z"}`,
		`{"token":"` + tok + `","expiry":"2030-01-01T00:59:59.123456789+02:00"}`,
		`{"token":"` + tok + `","expiry":"soon"}`,
		`{"token":"a.b.c","expiry":"2030-01-01T01:00:00Z"}`,
		`{"token":"eyJ\u0061.b.c","expiry":"2030-01-01T01:00:00Z"}`,
		`{"token":"` + tok + `", "expiry":"2030-01-01T01:00:00Z"}`,
		`{"token":"` + tok + `","expiry":"2030-01-01T01:00:00Z"}` + "\n",
	} {
		f.Add([]byte(e))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseEntry(b)
		if err != nil {
			return
		}
		var want cacheEntry
		require.NoError(t, json.Unmarshal(b, &want), "parseEntry accepted what encoding/json refuses")
		assert.Equal(t, want.Token, got.Raw)
		assert.True(t, want.Expiry.Equal(got.Expiry), "expiry %s, encoding/json says %s", got.Expiry, want.Expiry)
		assert.True(t, LooksLikeJWT(got.Raw))
	})
}

func TestParseEntryReadsWhatStoreWrites(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := testToken(t, now.Add(30*time.Minute+time.Second/3))
	b, err := appendEntry(nil, tok.Raw, tok.Expiry)
	require.NoError(t, err)
	got, err := parseEntry(b)
	require.NoError(t, err)
	assert.Equal(t, tok.Raw, got.Raw)
	assert.True(t, got.Expiry.Equal(tok.Expiry))
}

// compactJWT is what a cache entry's token must be, written out apart from
// entryToken: "eyJ", then three parts of base64url characters, the
// signature not empty.
var compactJWT = regexp.MustCompile(`^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$`)

// FuzzAppendEntryIsJSONMarshal: appendEntry writes what json.Marshal writes
// for the entry, for any token it accepts, and it accepts exactly the
// tokens parseEntry reads back.
func FuzzAppendEntryIsJSONMarshal(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln", int64(1893456000), int64(0), "UTC")
	f.Add("eyJ.a\n.b", int64(1), int64(999999999), "Local")
	f.Add("eyJ.a.", int64(1893456000), int64(0), "UTC") // no signature
	f.Add(`eyJ"}`, int64(253402300799), int64(1), "")
	f.Add("eyAiYWxnIjoiUlMyNTYifQ.eyJleHAiOjF9.c2ln", int64(1893456000), int64(0), "UTC") // { "alg": a header with a space
	f.Fuzz(func(t *testing.T, raw string, sec, nsec int64, zone string) {
		exp := time.Unix(sec%253402300800, nsec%1e9)
		if zone != "UTC" {
			exp = exp.In(time.FixedZone(zone, int(sec%50400)))
		}
		got, err := appendEntry(nil, raw, exp)
		// Whether parseEntry reads raw back, asked of an entry encoding/json
		// wrote with an expiry nothing refuses.
		probe, merr := json.Marshal(cacheEntry{Token: raw, Expiry: time.Unix(1893456000, 0).UTC()})
		require.NoError(t, merr)
		_, perr := parseEntry(probe)
		// Both share entryToken; this holds it to the rule written out.
		assert.Equal(t, compactJWT.MatchString(raw), perr == nil, "parseEntry and the compact-JWT rule disagree: %v", perr)
		if perr != nil {
			require.Error(t, err, "stored a token parseEntry refuses: %v", perr)
			return
		}
		want, merr := json.Marshal(cacheEntry{Token: raw, Expiry: exp.UTC()})
		if merr != nil || exp.IsZero() {
			return // a year json.Marshal refuses, or the zero time; ParseToken lets neither through
		}
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got))
		back, err := parseEntry(got)
		require.NoError(t, err)
		assert.Equal(t, raw, back.Raw)
	})
}
