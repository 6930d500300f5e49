package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mintJWT signs claims with a test key; ParseToken never verifies, so the
// key does not matter. It makes the tokens no STS would issue (no exp, exp
// of the wrong type, a fixed expiry) that parsing must cope with.
func mintJWT(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("test-key"))
	require.NoError(t, err)
	return s
}

func registryJWT(t testing.TB, exp time.Time) string {
	return mintJWT(t, jwt.MapClaims{
		"iss": "https://issuer.enforce.dev",
		"sub": "identity-1234",
		"aud": "cgr.dev",
		"exp": exp.Unix(),
	})
}

func TestParseToken(t *testing.T) {
	t.Parallel()
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	raw := registryJWT(t, exp)
	tok, err := ParseToken(raw)
	require.NoError(t, err)
	assert.Equal(t, raw, tok.Raw)
	assert.True(t, exp.Equal(tok.Expiry))

	// An expired token still parses: deciding what is fresh is the caller's job.
	old := registryJWT(t, time.Now().Add(-time.Hour))
	_, err = ParseToken(old)
	assert.NoError(t, err)

	// Fractional exp is allowed by RFC 7519's NumericDate.
	frac := mintJWT(t, jwt.MapClaims{"exp": 1893456000.5})
	tok, err = ParseToken(frac)
	require.NoError(t, err)
	assert.Equal(t, int64(1893456000), tok.Expiry.Unix())

	header, payload, sig := splitJWT(raw)
	for name, bad := range map[string]string{
		"empty":             "",
		"one part":          "abc",
		"two parts":         header + "." + payload,
		"four parts":        raw + ".x",
		"empty signature":   header + "." + payload + ".",
		"empty header":      "." + payload + "." + sig,
		"bad base64 claims": header + ".!!!." + sig,
		"claims not JSON":   header + ".bm90IGpzb24." + sig,
		"no exp":            mintJWT(t, jwt.MapClaims{"sub": "x"}),
		"exp is a string":   mintJWT(t, jwt.MapClaims{"exp": "tomorrow"}),
		"exp zero":          mintJWT(t, jwt.MapClaims{"exp": 0}),
		"exp negative":      mintJWT(t, jwt.MapClaims{"exp": -5}),
		"exp absurd":        mintJWT(t, jwt.MapClaims{"exp": 1e300}),
		"unknown alg":       "eyJhbGciOiJYWVoifQ." + payload + "." + sig,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseToken(bad)
			require.ErrorIs(t, err, ErrInvalidResponse)
			if bad != "" {
				assert.NotContains(t, err.Error(), bad)
			}
			assert.NotContains(t, err.Error(), sig)
		})
	}
}

// TestParseClaims: the one JWT parser reads the claims of any JWT, signed
// or not, with or without exp; ParseToken adds what an issued token needs.
func TestParseClaims(t *testing.T) {
	t.Parallel()
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	iat := exp.Add(-time.Hour)
	raw := mintJWT(t, jwt.MapClaims{"iss": "https://k8s", "sub": "system:serviceaccount:ns:sa", "aud": []string{"cgr.dev", "x"}, "exp": exp.Unix(), "iat": iat.Unix()})
	c, err := ParseClaims(raw)
	require.NoError(t, err)
	assert.Equal(t, "https://k8s", c.Issuer)
	assert.Equal(t, "system:serviceaccount:ns:sa", c.Subject)
	assert.Equal(t, []string{"cgr.dev", "x"}, c.Audience)
	assert.True(t, exp.Equal(c.Expiry))
	assert.True(t, iat.Equal(c.IssuedAt))

	// A single audience is a string in JSON.
	c, err = ParseClaims(mintJWT(t, jwt.MapClaims{"aud": "cgr.dev"}))
	require.NoError(t, err)
	assert.Equal(t, []string{"cgr.dev"}, c.Audience)
	assert.True(t, c.Expiry.IsZero(), "no exp claim, zero Expiry")
	assert.True(t, c.IssuedAt.IsZero(), "no iat claim, zero IssuedAt")

	// Unsigned: the claims are readable, but it is no registry token.
	header, payload, sig := splitJWT(raw)
	unsigned := header + "." + payload + "."
	_, err = ParseClaims(unsigned)
	require.NoError(t, err)
	_, err = ParseToken(unsigned)
	require.ErrorIs(t, err, ErrInvalidResponse)
	assert.Contains(t, err.Error(), "signature part is empty")

	for name, bad := range map[string]string{
		"empty":        "",
		"one part":     "abc",
		"four parts":   raw + ".x",
		"empty header": "." + payload + "." + sig,
		"empty claims": header + ".." + sig,
		"claims bad":   header + ".bm90IGpzb24." + sig,
		"unknown alg":  "eyJhbGciOiJYWVoifQ." + payload + "." + sig,
		"exp a string": mintJWT(t, jwt.MapClaims{"exp": "tomorrow"}),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseClaims(bad)
			require.Error(t, err)
			assert.False(t, errors.Is(err, ErrInvalidResponse), "a claims error is not about an STS answer")
			assert.False(t, strings.Contains(err.Error(), payload), "shows the claims")
			assert.False(t, strings.Contains(err.Error(), sig), "shows the signature")
		})
	}
}

func splitJWT(raw string) (header, payload, sig string) {
	p := strings.Split(raw, ".")
	return p[0], p[1], p[2]
}

func TestTokenString(t *testing.T) {
	t.Parallel()
	tok := Token{Raw: "secret.jwt.value", Expiry: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	assert.Equal(t, "exchange.Token{Expiry: 2026-03-04T05:06:07Z}", tok.String())
	assert.Equal(t, tok.String(), tok.GoString())
	assert.Equal(t, tok.String(), fmt.Sprintf("%#v", tok))
	assert.Equal(t, "exchange.Token{}", Token{}.String())
}

func TestParseResponse(t *testing.T) {
	t.Parallel()
	raw := registryJWT(t, time.Now().Add(time.Hour))
	tok, err := parseResponse([]byte(`{"token":"` + raw + `","refresh_token":"r","expiry":"garbage"}`))
	require.NoError(t, err)
	assert.Equal(t, raw, tok.Raw)

	_, err = parseResponse([]byte(`{"token":"` + raw + `"} trailing`))
	assert.ErrorIs(t, err, ErrInvalidResponse)
}

func TestParseErrorBody(t *testing.T) {
	t.Parallel()
	const secret = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	long := strings.Repeat("x", 500)
	for _, tc := range []struct {
		name     string
		body     string
		wantCode int
		wantMsg  string
	}{
		{"grpc", `{"code":7,"message":"identity mismatch","details":[]}`, 7, "identity mismatch"},
		{"grpc no details", `{"code":5,"message":"not found"}`, 5, "not found"},
		{"grpc empty message", `{"code":13,"message":""}`, 13, ""},
		{"grpc unknown code", `{"code":42,"message":"odd"}`, 42, "odd"},
		{"oauth style", `{"error":"invalid_grant","error_description":"expired"}`, 0, "expired"},
		{"json message only", `{"message":"nope"}`, 0, "nope"},
		{"json other", `{"foo":"bar"}`, 0, `{"foo":"bar"}`},
		{"empty", "", 0, ""},
		{"whitespace", " \n\t ", 0, ""},
		{"plain", "upstream connect error\n", 0, "upstream connect error"},
		{"html title", "<!DOCTYPE html>\n<html><head><title>502 Bad\n Gateway</title></head><body>...</body></html>", 0, "502 Bad Gateway"},
		{"html no title", "<html><body>oops</body></html>", 0, "<html><body>oops</body></html>"},
		{"control chars", "a\x00b\x1bc\td", 0, "a\uFFFDb\uFFFDc d"},
		{"invalid utf8", "a\xffb", 0, "a\uFFFDb"},
		{"secret echoed", "bad token " + secret, 0, "bad token [REDACTED]"},
		{"secret in grpc", `{"code":16,"message":"bad ` + secret + `"}`, 16, "bad [REDACTED]"},
		{"long snippet", long, 0, strings.Repeat("x", maxSnippet-1) + "…"},
		{"long grpc", `{"code":3,"message":"` + long + long + long + `"}`, 3, strings.Repeat("x", maxMessage-1) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := parseErrorBody([]byte(tc.body), secret)
			assert.Equal(t, tc.wantCode, code)
			assert.Equal(t, tc.wantMsg, msg)
		})
	}
}

func TestStatusErrorText(t *testing.T) {
	t.Parallel()
	e := &StatusError{URL: "https://x/sts/exchange", HTTPStatus: 599, Code: 99, Message: "m"}
	assert.Equal(t, `STS https://x/sts/exchange answered 599 (gRPC code 99): "m"`, e.Error())
	assert.False(t, e.Temporary())
	forged := &StatusError{URL: "https://x/sts/exchange", HTTPStatus: 403, Code: 7, Message: "no\nERROR other line; check CHAINGUARD_ISSUER"}
	assert.Equal(t, `STS https://x/sts/exchange answered 403 Forbidden (PermissionDenied): "no\nERROR other line; check CHAINGUARD_ISSUER"`, forged.Error(),
		"the server's words are quoted: they cannot break the line nor pass for ours")
	redirect := &StatusError{URL: "https://x/sts/exchange", HTTPStatus: 307, Message: "Temporary Redirect", Location: "https://y/\n"}
	assert.Equal(t, `STS https://x/sts/exchange answered 307 Temporary Redirect, a redirect to "https://y/\n" that was not followed: a redirect must not carry the bearer token elsewhere`, redirect.Error())
	for _, code := range []int{408, 429, 502, 503, 504} {
		assert.True(t, (&StatusError{HTTPStatus: code}).Temporary(), code)
	}
	for _, code := range []int{200, 301, 400, 401, 403, 404, 500, 501} {
		assert.False(t, (&StatusError{HTTPStatus: code}).Temporary(), code)
	}
	ue := &UnreachableError{URL: "https://x/sts/exchange", Err: errors.New("dial tcp: boom")}
	assert.Equal(t, "cannot reach the STS at https://x/sts/exchange: dial tcp: boom", ue.Error())
}

// fuzzSecret stands in for the subject token in FuzzParseError.
const fuzzSecret = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJmdXp6In0.ZnV6ei1zaWduYXR1cmUtYnl0ZXM"

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`{"token":"` + mintJWT(f, jwt.MapClaims{"exp": 4102444800}) + `"}`))
	f.Add([]byte(`{"token":"a.b.c"}`))
	f.Add([]byte(`{"TOKEN":"a.b.c","tOkEn":null}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"token":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := parseResponse(body)
		wantTok, wantErr := parseResponseByReflection(body)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || tok.Raw != wantTok.Raw || !tok.Expiry.Equal(wantTok.Expiry) {
			t.Fatalf("parseResponse disagrees with encoding/json's decoding:\n got %v %v\nwant %v %v", tok, err, wantTok, wantErr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidResponse) {
				t.Fatalf("error does not wrap ErrInvalidResponse: %v", err)
			}
			if len(body) >= 8 && strings.Contains(err.Error(), string(body)) {
				t.Fatalf("error quotes the body: %v", err)
			}
			if tok != (Token{}) {
				t.Fatalf("error with a non-zero token")
			}
			return
		}
		if tok.Raw == "" || tok.Expiry.IsZero() {
			t.Fatalf("success without a usable token: %v", tok)
		}
		if strings.Contains(fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok), tok.Raw) {
			t.Fatalf("formatting leaks Raw")
		}
	})
}

func FuzzParseError(f *testing.F) {
	f.Add([]byte(`{"code":7,"message":"identity mismatch","details":[]}`))
	f.Add([]byte("<html><head><title>503</title></head></html>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(body []byte) {
			code, msg := parseErrorBody(body, fuzzSecret)
			if !utf8.ValidString(msg) {
				t.Fatalf("message is not valid UTF-8: %q", msg)
			}
			limit := maxMessage
			if trimmed := bytes.TrimSpace(body); code == 0 && (len(trimmed) == 0 || trimmed[0] != '{') {
				limit = maxSnippet
			}
			if n := utf8.RuneCountInString(msg); n > limit {
				t.Fatalf("message has %d runes, limit %d", n, limit)
			}
			for _, r := range msg {
				if r != ' ' && !unicode.IsPrint(r) {
					t.Fatalf("message has non-printable rune %U: %q", r, msg)
				}
			}
			if msg != strings.TrimSpace(msg) {
				t.Fatalf("message has surrounding space: %q", msg)
			}
			if strings.Contains(msg, fuzzSecret) {
				t.Fatalf("message leaks the secret: %q", msg)
			}
		}
		check(body)
		// The same body with the secret spliced into its middle.
		mid := len(body) / 2
		check([]byte(string(body[:mid]) + fuzzSecret + string(body[mid:])))
	})
}

// parseResponseByReflection is parseResponse as it was written before
// tokenMember, with encoding/json decoding the body into a struct: the
// reference FuzzParseResponse holds parseResponse to.
func parseResponseByReflection(body []byte) (Token, error) {
	if len(body) == 0 {
		return Token{}, fmt.Errorf("%w: the body is empty", ErrInvalidResponse)
	}
	if !json.Valid(body) {
		return Token{}, fmt.Errorf("%w: the body is not JSON", ErrInvalidResponse)
	}
	var resp struct {
		Token json.RawMessage `json:"token"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return Token{}, fmt.Errorf("%w: the body is not a JSON object", ErrInvalidResponse)
	}
	if len(resp.Token) == 0 || string(resp.Token) == "null" {
		return Token{}, fmt.Errorf("%w: the body has no \"token\" field", ErrInvalidResponse)
	}
	var raw string
	if err := json.Unmarshal(resp.Token, &raw); err != nil {
		return Token{}, fmt.Errorf("%w: the \"token\" field is not a string", ErrInvalidResponse)
	}
	if raw == "" {
		return Token{}, fmt.Errorf("%w: the \"token\" field is empty", ErrInvalidResponse)
	}
	return ParseToken(raw)
}

// TestParseResponseFindsTheTokenAsEncodingJSONDoes: the cases a member
// search by hand gets wrong, against the decoding by reflection.
func TestParseResponseFindsTheTokenAsEncodingJSONDoes(t *testing.T) {
	t.Parallel()
	raw := registryJWT(t, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	for _, body := range []string{
		`{"token":"` + raw + `"}`,
		`{"TOKEN":"` + raw + `"}`,
		`{"token":"` + raw + `","Token":null}`,
		`{"token":null,"token":"` + raw + `"}`,
		`{"tokens":"` + raw + `","to\u006ben":"` + raw + `"}`,
		`{"refresh_token":"x","expiry":{"a":["token"]},"token":"` + raw + `"}`,
		`{"token":"` + raw + `\n"}`,
		`{"token":1}`, `{"token":["a"]}`, `{"token":""}`, `{}`, `null`, `[]`, `"token"`, ` {"token" : "` + raw + `" } `,
	} {
		tok, err := parseResponse([]byte(body))
		wantTok, wantErr := parseResponseByReflection([]byte(body))
		assert.Equal(t, fmt.Sprint(wantErr), fmt.Sprint(err), body)
		assert.Equal(t, wantTok.Raw, tok.Raw, body)
	}
}
