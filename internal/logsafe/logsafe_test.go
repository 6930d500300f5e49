package logsafe

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuoteIsOneCappedLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"cgr.dev", `"cgr.dev"`},
		{"a\nb", `"a\nb"`},
		{"a\r\nforged: line", `"a\r\nforged: line"`},
		{"\x1b[31mred", `"\x1b[31mred"`},
		{"rtl\u202eevil", `"rtl\u202eevil"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
	} {
		assert.Equal(t, tc.want, Quote(tc.in, DefaultLimit), "input %q", tc.in)
	}
	long := strings.Repeat("x", 10000)
	q := Quote(long, 16)
	assert.Equal(t, `"`+strings.Repeat("x", 16)+`"… (10000 bytes)`, q)
	assert.NotContains(t, Quote(strings.Repeat("\n", 500), 8), "\n")
}

func TestShapeShowsNoContent(t *testing.T) {
	t.Parallel()
	secret := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"
	for _, v := range []string{secret, `"` + secret + `"`, "Bearer " + secret, " " + secret + "\n", secret + "x"} {
		s := Shape(v)
		for _, part := range strings.Split(secret, ".") {
			assert.False(t, strings.Contains(s, part[3:]), "Shape shows part of the secret")
		}
	}
	assert.Equal(t, "61 bytes, 3 dot-separated parts, starts like a JWT", Shape(secret))
	assert.Contains(t, Shape("Bearer "+secret), "after other text")
	assert.Contains(t, Shape(" "+secret), "surrounding white space")
}

func TestRedactHidesSecretsAndTheirLongParts(t *testing.T) {
	const (
		header  = "eyJhbGciOiJSUzI1NiJ9"
		payload = "eyJzdWIiOiJ3b3JrbG9hZCJ9"
		sig     = "c2lnbmF0dXJlLXNpZ25hdHVyZQ"
		jwt     = header + "." + payload + "." + sig
	)
	for _, tc := range []struct {
		name, in, want string
		secrets        []string
	}{
		{"whole token", "bad token " + jwt + "!", "bad token [REDACTED]!", []string{jwt}},
		{"payload only", "claims=" + payload, "claims=[REDACTED]", []string{jwt}},
		{"signature only", "sig=" + sig + ";", "sig=[REDACTED];", []string{jwt}},
		{"parts split by other text", header + "." + payload + "\x00." + sig, "[REDACTED].[REDACTED]\x00.[REDACTED]", []string{jwt}},
		{"short parts stay", "short, e30 and x", "short, e30 and x", []string{"short.e30.x"}},
		{"long part of a short-signed token", "alg " + header + " and e30", "alg [REDACTED] and e30", []string{header + ".e30."}},
		{"empty secret ignored", "nothing here", "nothing here", []string{""}},
		{"no secrets", "text " + jwt, "text " + jwt, nil},
		{"several secrets", "x=hunter2hunter2 y=" + jwt, "x=[REDACTED] y=[REDACTED]", []string{"", "hunter2hunter2", jwt}},
		{"opaque secret", "key abc", "key [REDACTED]", []string{"abc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Redact(tc.in, tc.secrets...))
		})
	}
}

func TestRedactJWTsHidesEveryJWTShapedRun(t *testing.T) {
	t.Parallel()
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-bmF0_dXJl"
	for _, tc := range []struct{ in, want string }{
		{"no token here", "no token here"},
		{"", ""},
		{jwt, Redacted},
		{"token " + jwt + " refused", "token " + Redacted + " refused"},
		{`"` + jwt + `",` + jwt, `"` + Redacted + `",` + Redacted},
		{"payload only eyJzdWIiOiJ4In0 left", "payload only " + Redacted + " left"},
		{"eyJ", Redacted},
		{"eyJeyJ.x/y", Redacted + "/y"},
		{"ends at a space eyJabc def", "ends at a space " + Redacted + " def"},
		{"not eyj or EYJ", "not eyj or EYJ"},
	} {
		assert.Equal(t, tc.want, RedactJWTs(tc.in), "input %q", tc.in)
	}
}

// TestOnlyJWTCharsIsBase64URLAndTheDot: every byte, against the base64url
// alphabet (the parts of a JWT) and the dot between them.
func TestOnlyJWTCharsIsBase64URLAndTheDot(t *testing.T) {
	t.Parallel()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for c := range 256 {
		want := strings.IndexByte(alphabet+".", byte(c)) >= 0
		s := "eyJ." + string([]byte{byte(c)}) + "_-09azAZ"
		assert.Equal(t, want, OnlyJWTChars(s), "byte %#x", c)
		assert.Equal(t, want, isJWTChar(rune(c)), "byte %#x", c)
	}
	assert.True(t, OnlyJWTChars(""))
	assert.False(t, OnlyJWTChars("eyJé"), "a letter outside ASCII is not base64url")
}

// TestAnIdentityIDIsShown: a Chainguard identity id holds a 40-character
// run (its group) but names an identity; near misses stay hidden.
func TestAnIdentityIDIsShown(t *testing.T) {
	t.Parallel()
	const id = "720909c9f5279097d847ad02a2f24ba8f59de36a/b6a1d3e7c9f20517"
	assert.False(t, MightBeSecret(id))
	assert.False(t, MightBeSecret(id+"/0123456789abcdef"))
	assert.Equal(t, `"`+id+`"`, Describe(id))
	for _, v := range []string{
		"720909c9f5279097d847ad02a2f24ba8f59de36a",                   // no path: a 40-hex opaque token looks the same
		"720909c9f5279097d847ad02a2f24ba8f59de36a/b6a1d3e7c9f2051",   // a short segment
		"720909C9F5279097D847AD02A2F24BA8F59DE36A/b6a1d3e7c9f20517",  // upper case
		"ghp_0123456789abcdefghijABCDEFGHIJ012345/b6a1d3e7c9f20517",  // not hex
		"720909c9f5279097d847ad02a2f24ba8f59de36a/b6a1d3e7c9f20517/", // an empty segment
	} {
		assert.True(t, MightBeSecret(v), v)
	}
}

// TestFlagErrorShowsNoSecretAndNoLineBreak: what the flag package quotes
// back, a value or a flag's name, is redacted when it may be a secret.
func TestFlagErrorShowsNoSecretAndNoLineBreak(t *testing.T) {
	t.Parallel()
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"
	const opaque = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Bool("dry-run", false, "")
	for _, args := range [][]string{
		{"--dry-run=" + jwt}, {"--dry-run=" + opaque}, {"-" + opaque}, {"--" + jwt}, {"--no\nsuch"},
		{"--" + opaque + "=1"}, {"--no\u2028such"}, {"--no\u202esuch"},
	} {
		err := fs.Parse(args)
		require.Error(t, err)
		got := FlagError(err, args)
		assert.NotContains(t, got, "eyJ", args)
		assert.NotContains(t, got, "ghp_0123", args)
		assert.NotContains(t, got, "\n", args)
		assert.NotContains(t, got, "\u2028", args)
		assert.NotContains(t, got, "\u202e", args)
		assert.NotEmpty(t, got)
	}
	err := fs.Parse([]string{"--nosuch"})
	assert.Equal(t, err.Error(), FlagError(err, []string{"--nosuch"}), "an ordinary mistake reads as the flag package wrote it")
}
