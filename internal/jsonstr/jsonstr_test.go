package jsonstr

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAppendIsEncodingJSONForEveryByte: each byte, alone and inside a
// token, comes out as encoding/json writes it.
func TestAppendIsEncodingJSONForEveryByte(t *testing.T) {
	t.Parallel()
	for c := range 256 {
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
