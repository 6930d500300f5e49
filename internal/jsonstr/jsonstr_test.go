package jsonstr

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAppendIsEncodingJSONForEveryByte: each byte, alone and inside a
// token, comes out as encoding/json writes it, and the bytes copied as
// they are are exactly those encoding/json writes as themselves.
func TestAppendIsEncodingJSONForEveryByte(t *testing.T) {
	t.Parallel()
	for c := range 256 {
		q, err := json.Marshal(string([]byte{byte(c)}))
		require.NoError(t, err)
		asItself := string(q) == `"`+string([]byte{byte(c)})+`"`
		// DEL is written as itself but left to encoding/json: plain
		// printable ASCII is all a token holds.
		assert.Equal(t, asItself && c != 0x7f, plain[c>>6]&(1<<(c&63)) != 0, "byte %#x", c)
		for _, s := range []string{string([]byte{byte(c)}), "eyJ" + string([]byte{byte(c)}) + "x.y"} {
			want, err := json.Marshal(s)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(Append(nil, s)), "byte %#x in %q", c, s)
		}
	}
}

// FuzzAppendIsEncodingJSON: any string, appended after anything.
func FuzzAppendIsEncodingJSON(f *testing.F) {
	for _, s := range []string{"", "eyJhbGciOi.e30.c2ln", "a\"b\\c", "<&>", "\u2028", "\xff", "µs", "\x00\x1f\x7f"} {
		f.Add("prefix", s)
	}
	f.Fuzz(func(t *testing.T, prefix, s string) {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, prefix+string(want), string(Append([]byte(prefix), s)))
	})
}

// TestAppendCopiesATokenWithoutEncodingJSON: the reason Append exists; a
// token is copied into the buffer, without encoding/json (which would
// allocate).
func TestAppendCopiesATokenWithoutEncodingJSON(t *testing.T) {
	tok := "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzIn0.c2lnbmF0dXJl-_"
	buf := make([]byte, 0, 128)
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = Append(buf[:0], tok) }))
}
