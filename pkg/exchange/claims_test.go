package exchange

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withClaims is a compact JWT whose claims part is exactly payload, as a
// token from anywhere may have it: ParseClaims must read the claims the way
// golang-jwt's RegisteredClaims does, whatever JSON they are.
func withClaims(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString([]byte(payload)) + ".c2ln"
}

// registeredClaims is what golang-jwt's own RegisteredClaims make of raw:
// the reference claimSet is held to.
func registeredClaims(raw string) (Claims, error) {
	var rc jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &rc); err != nil {
		return Claims{}, err
	}
	c := Claims{Issuer: rc.Issuer, Subject: rc.Subject, Audience: rc.Audience}
	if rc.ExpiresAt != nil {
		c.Expiry = rc.ExpiresAt.Time
	}
	if rc.IssuedAt != nil {
		c.IssuedAt = rc.IssuedAt.Time
	}
	return c, nil
}

// requireAgrees fails unless ParseClaims accepts raw exactly when
// golang-jwt's ParseUnverified with RegisteredClaims does, with the same
// claims, and refuses it for the same reason: a missing or unknown alg, or
// anything else.
func requireAgrees(t *testing.T, raw string) {
	t.Helper()
	want, wantErr := registeredClaims(raw)
	got, err := ParseClaims(raw)
	if wantErr != nil {
		require.Error(t, err, "ParseUnverified refuses it: %v", wantErr)
		assert.Equal(t, errors.Is(wantErr, jwt.ErrTokenUnverifiable), strings.Contains(err.Error(), "alg header"),
			"ParseClaims says %q, ParseUnverified %q", err, wantErr)
		return
	}
	require.NoError(t, err)
	assert.Equal(t, want.Issuer, got.Issuer)
	assert.Equal(t, want.Subject, got.Subject)
	assert.Equal(t, want.Audience, got.Audience)
	assert.True(t, want.Expiry.Equal(got.Expiry), "exp %v, want %v", got.Expiry, want.Expiry)
	assert.True(t, want.IssuedAt.Equal(got.IssuedAt), "iat %v, want %v", got.IssuedAt, want.IssuedAt)
}

// jwtOf is a compact JWT of the three parts, each base64url-encoded as
// they are.
func jwtOf(header, payload, signature string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString([]byte(signature))
}

// headerCases are the headers golang-jwt reads by decoding them into a
// map[string]any and looking up "alg": exact names, repeats, non-strings,
// escapes, what is not an object, and numbers a float64 cannot hold
// anywhere in it.
var headerCases = map[string]string{
	"rs256":              `{"alg":"RS256","kid":"k","typ":"JWT"}`,
	"none":               `{"alg":"none"}`,
	"unknown":            `{"alg":"RS999"}`,
	"lower case":         `{"alg":"rs256"}`,
	"name case":          `{"ALG":"RS256"}`,
	"missing":            `{"typ":"JWT"}`,
	"empty":              `{}`,
	"empty alg":          `{"alg":""}`,
	"number":             `{"alg":256}`,
	"null alg":           `{"alg":null}`,
	"last wins unknown":  `{"alg":"RS256","alg":"x"}`,
	"last wins known":    `{"alg":"x","alg":"ES256"}`,
	"last wins non-str":  `{"alg":"RS256","alg":["RS256"]}`,
	"escaped name":       `{"al\u0067":"HS256"}`,
	"escaped value":      `{"alg":"RS\u0032\u0035\u0036"}`,
	"invalid utf8":       "{\"alg\":\"RS256\xff\"}",
	"space":              " \n{ \"alg\" : \"PS256\" } \t",
	"null":               `null`,
	"array":              `[]`,
	"string":             `"RS256"`,
	"bare number":        `1`,
	"true":               `true`,
	"huge number":        `{"alg":"RS256","x":1e400}`,
	"huge nested":        `{"alg":"RS256","x":[{"y":-1e999}]}`,
	"tiny number":        `{"alg":"RS256","x":1e-400}`,
	"number in string":   `{"alg":"RS256","x":"1e400"}`,
	"escaped quote":      `{"x":"\\\"1e400","alg":"EdDSA"}`,
	"trailing garbage":   `{"alg":"RS256"}x`,
	"unclosed":           `{"alg":"RS256"`,
	"not json":           `alg=RS256`,
	"nested alg":         `{"x":{"alg":"RS256"}}`,
	"deep":               `{"x":[[[[[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]]]],"alg":"HS512"}`,
	"empty string":       ``,
	"object in an array": `[{"alg":"RS256"}]`,
}

// signatureCases are signature parts, as they stand in the token: golang-jwt
// decodes the signature last, after the alg.
var signatureCases = []string{"c2ln", "", "a", "!!!", "c2ln\n", "c2ln=", "c2l", "+/+/"}

func TestParseClaimsReadsHeadersAsParseUnverifiedDoes(t *testing.T) {
	t.Parallel()
	for name, header := range headerCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			requireAgrees(t, jwtOf(header, claimCases["kubernetes"], "sig"))
			requireAgrees(t, jwtOf(header, claimCases["unclosed"], "sig"))
		})
	}
	for _, sig := range signatureCases {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256"}`))
		p := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"a"}`))
		requireAgrees(t, h+"."+p+"."+sig)
	}
}

// TestParseClaimsHeaderCases pins some of the cases above to outcomes, so
// that the agreement is not with a reference that has changed.
func TestParseClaimsHeaderCases(t *testing.T) {
	t.Parallel()
	for name, wantAlgError := range map[string]bool{
		"rs256": false, "escaped value": false, "none": false, "space": false, "null": true,
		"lower case": true, "name case": true, "last wins unknown": true, "last wins non-str": true,
		"nested alg": true,
	} {
		_, err := ParseClaims(jwtOf(headerCases[name], `{"iss":"a"}`, "sig"))
		if !wantAlgError {
			assert.NoError(t, err, name)
			continue
		}
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), "alg header", name)
		}
	}
	for _, name := range []string{"huge number", "huge nested", "array", "trailing garbage"} {
		_, err := ParseClaims(jwtOf(headerCases[name], `{"iss":"a"}`, "sig"))
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), "not a well-formed JWT", name)
		}
	}
	_, err := ParseClaims(jwtOf(`{"alg":"RS256"}`, `{"iss":"a"}`, "sig")[:len(jwtOf(`{"alg":"RS256"}`, `{"iss":"a"}`, "sig"))-1] + "!")
	assert.Error(t, err, "a signature that is not base64url")
}

// claimCases are the ways encoding/json fills a struct that a reader by
// hand gets wrong: names matched without regard to case (Unicode's
// folding too), repeats, null, numbers as strings, escapes, invalid
// UTF-8, members of the wrong type, and what is not an object at all.
var claimCases = map[string]string{
	"kubernetes":           `{"aud":["issuer.enforce.dev"],"exp":1795678516,"iat":1795674916,"iss":"https://kubernetes.default.svc","kubernetes.io":{"namespace":"ns","pod":{"name":"p","uid":"u"},"serviceaccount":{"name":"sa","uid":"v"}},"nbf":1795674916,"sub":"system:serviceaccount:ns:sa"}`,
	"empty":                `{}`,
	"space":                " \t\r\n{ \"iss\" : \"a\" ,\n\"exp\" : 1e3 } \n",
	"null":                 `null`,
	"null in space":        " null\n",
	"array":                `[]`,
	"string":               `"iss"`,
	"number":               `5`,
	"case":                 `{"ISS":"a","Sub":"b","AUD":"c","eXp":12,"IAT":3}`,
	"fold kelvin":          `{"\u212aey":1,"iſs":"long s","ſub":"s"}`,
	"a case-folded repeat": `{"iss":"exact","ISS":"fold"}`,
	"last wins":            `{"iss":"a","iss":"b","exp":1,"exp":2}`,
	"null keeps string":    `{"iss":"a","iss":null,"aud":"x","aud":null}`,
	"null clears time":     `{"exp":5,"exp":null,"iat":7,"iat":null}`,
	"time as string":       `{"exp":"1700000000","iat":"1.5e9"}`,
	"time bad string":      `{"exp":"soon"}`,
	"time fraction":        `{"exp":1700000000.75,"iat":-1.25}`,
	"time huge":            `{"exp":1e400}`,
	"time bool":            `{"exp":true}`,
	"time object":          `{"exp":{"at":1}}`,
	"nbf wrong":            `{"nbf":"x"}`,
	"jti wrong":            `{"jti":5}`,
	"jti null":             `{"jti":null}`,
	"iss number":           `{"iss":5}`,
	"iss array":            `{"iss":["a"]}`,
	"aud string":           `{"aud":"one"}`,
	"aud empty":            `{"aud":[]}`,
	"aud null member":      `{"aud":["a",null]}`,
	"aud number member":    `{"aud":["a",1]}`,
	"aud nested":           `{"aud":[["a"]]}`,
	"aud object":           `{"aud":{"a":"b"}}`,
	"escapes":              `{"iss":"a\"b\\c\/d\u00e9\ud83d\ude00","sub":"\u0000"}`,
	"escaped name":         `{"\u0069ss":"escaped name","s\u0075b":"b"}`,
	"lone surrogate":       `{"iss":"\ud800x"}`,
	"invalid utf8":         "{\"iss\":\"a\xffb\",\"sub\":\"\xc3\"}",
	"utf8":                 `{"iss":"ünïcödé","aud":["日本"]}`,
	"other members":        `{"x":[1,{"y":"}]"},"z"],"iss":"after","n":null,"t":true,"f":false,"e":-0.5E+2}`,
	"trailing garbage":     `{"iss":"a"}x`,
	"two objects":          `{"iss":"a"}{"iss":"b"}`,
	"unclosed":             `{"iss":"a"`,
	"missing colon":        `{"iss" "a"}`,
	"trailing comma":       `{"iss":"a",}`,
	"bare key":             `{iss:"a"}`,
	"deep":                 `{"a":[[[[[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]]]],"iss":"deep"}`,
	"unterminated value":   `{"iss":"a\"}`,
}

func TestParseClaimsReadsClaimsAsRegisteredClaimsDoes(t *testing.T) {
	t.Parallel()
	for name, payload := range claimCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			requireAgrees(t, withClaims(payload))
		})
	}
}

// TestParseClaimsCases pins a few of the cases above to values, so that the
// agreement is not with a reference that has changed.
func TestParseClaimsCases(t *testing.T) {
	t.Parallel()
	c, err := ParseClaims(withClaims(claimCases["case"]))
	require.NoError(t, err)
	assert.Equal(t, Claims{Issuer: "a", Subject: "b", Audience: []string{"c"}}, Claims{Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience})
	assert.Equal(t, int64(12), c.Expiry.Unix())

	c, err = ParseClaims(withClaims(claimCases["a case-folded repeat"]))
	require.NoError(t, err)
	assert.Equal(t, "fold", c.Issuer, "the last of the names that match wins, as in encoding/json")

	c, err = ParseClaims(withClaims(claimCases["null clears time"]))
	require.NoError(t, err)
	assert.True(t, c.Expiry.IsZero())

	c, err = ParseClaims(withClaims(claimCases["time as string"]))
	require.NoError(t, err)
	assert.Equal(t, int64(1700000000), c.Expiry.Unix())

	c, err = ParseClaims(withClaims(claimCases["other members"]))
	require.NoError(t, err)
	assert.Equal(t, "after", c.Issuer)

	for _, bad := range []string{"time bad string", "iss number", "aud null member", "trailing garbage", "array"} {
		_, err = ParseClaims(withClaims(claimCases[bad]))
		assert.Error(t, err, bad)
	}
}

// FuzzParseClaimsAgreesWithRegisteredClaims: for any claims part,
// ParseClaims accepts exactly what golang-jwt's RegisteredClaims accepts
// and reads the same claims from it.
func FuzzParseClaimsAgreesWithRegisteredClaims(f *testing.F) {
	for _, payload := range claimCases {
		f.Add(payload)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		requireAgrees(t, withClaims(payload))
	})
}

// FuzzParseClaimsAgreesWithParseUnverified: for any header, claims and
// signature, ParseClaims agrees with golang-jwt's ParseUnverified.
func FuzzParseClaimsAgreesWithParseUnverified(f *testing.F) {
	for _, header := range headerCases {
		f.Add(header, claimCases["kubernetes"], "sig")
	}
	for _, payload := range claimCases {
		f.Add(`{"alg":"ES256"}`, payload, "")
	}
	f.Fuzz(func(t *testing.T, header, payload, signature string) {
		requireAgrees(t, jwtOf(header, payload, signature))
	})
}

// FuzzParseClaimsRawAgreesWithParseUnverified: for any string at all.
func FuzzParseClaimsRawAgreesWithParseUnverified(f *testing.F) {
	f.Add(withClaims(claimCases["kubernetes"]))
	f.Add("a.b.c")
	f.Add("..")
	f.Add("e30.e30.")
	f.Add("eyJhbGciOiJub25lIn0.bnVsbA.")
	for _, sig := range signatureCases {
		f.Add(jwtOf(`{"alg":"HS256"}`, `{"sub":"s"}`, "") + sig)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		requireAgrees(t, raw)
	})
}
