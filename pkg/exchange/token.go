package exchange

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrInvalidResponse means the STS answered 200 but the body did not carry a
// token this helper can use. Errors wrapping it say what was wrong, never
// what the body or the token contained.
var ErrInvalidResponse = errors.New("the STS answered 200 but not with a usable token")

// Token is a registry token issued by the STS.
//
// Its String, GoString and Format methods never print Raw, so a Token can be
// passed to loggers and fmt verbs without leaking the credential.
type Token struct {
	// Raw is the JWT as issued. Never log it.
	Raw string
	// Expiry is the JWT's own exp claim; the STS's separate "expiry" field is
	// ignored so that the token is the single source of truth.
	Expiry time.Time
	// IssuedAt is the JWT's iat claim, or zero if it has none. An iat well
	// ahead of the local clock shows that clock is behind, and then the
	// local clock misjudges how long the token lives.
	IssuedAt time.Time
}

// String describes the token without its secret.
func (t Token) String() string {
	if t.Expiry.IsZero() {
		return "exchange.Token{}"
	}
	return "exchange.Token{Expiry: " + t.Expiry.UTC().Format(time.RFC3339) + "}"
}

// GoString is String, so %#v does not print Raw either.
func (t Token) GoString() string { return t.String() }

// Format makes every fmt verb (including %d, %x and friends, which would
// otherwise print struct fields) render String, so Raw cannot leak through a
// careless format string.
func (t Token) Format(f fmt.State, _ rune) {
	_, _ = f.Write([]byte(t.String()))
}

// Claims are the registered claims of a JWT that this helper reads, as the
// token states them: nothing has verified them.
type Claims struct {
	Issuer   string   // iss
	Subject  string   // sub
	Audience []string // aud; a single string in the JWT becomes one element
	// Expiry is the exp claim, or zero if there is none.
	Expiry time.Time
	// IssuedAt is the iat claim, or zero if there is none.
	IssuedAt time.Time
}

// ParseClaims reads the claims of a compact JWT without verifying its
// signature. It is this module's one JWT parser, and it lives here because
// both tokens of an exchange are JWTs: the subject token it presents (which
// pkg/creds reads as the ambient token) and the token the STS issues.
//
// Not verifying is safe only because nothing trusts these claims: the STS
// verifies the subject token and the registry the issued one. The helper
// reads them to judge a token's lifetime, to key its cache and to explain a
// refusal. raw must be three dot-separated parts, with a known alg and
// well-formed claims; errors say which is wrong and never include raw or any
// part of it.
func ParseClaims(raw string) (Claims, error) {
	if n := strings.Count(raw, ".") + 1; n != 3 {
		return Claims{}, fmt.Errorf("token is not a JWT (a JWT has 3 dot-separated parts, this has %d)", n)
	}
	header, rest, _ := strings.Cut(raw, ".")
	payload, signature, _ := strings.Cut(rest, ".")
	for _, p := range [...]struct{ name, part string }{{"header", header}, {"claims", payload}} {
		if p.part == "" {
			return Claims{}, fmt.Errorf("token is not a JWT (its %s part is empty)", p.name)
		}
	}
	var rc claimSet
	if err := parseUnverified(header, payload, signature, &rc); err != nil {
		// Only the category is reported: a message about the input could
		// quote bits of it.
		what := "it is not a well-formed JWT"
		if errors.Is(err, errUnverifiable) {
			what = "its alg header is missing or unknown"
		}
		return Claims{}, fmt.Errorf("token is not a usable JWT: %s", what)
	}
	return rc.Claims, nil
}

// ParseToken reads a token the STS issued, with ParseClaims, and checks
// what the helper needs of it before handing it out: a signature part (an
// unsigned JWT is not a registry token) and a plausible exp, since the
// helper must know how long it may hand the token out. An implausible iat
// is dropped. Errors wrap ErrInvalidResponse and never include raw or any
// part of it.
func ParseToken(raw string) (Token, error) {
	c, err := ParseClaims(raw)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	if raw[strings.LastIndexByte(raw, '.')+1:] == "" {
		return Token{}, fmt.Errorf("%w: token is not a signed JWT (its signature part is empty)", ErrInvalidResponse)
	}
	if c.Expiry.IsZero() {
		return Token{}, fmt.Errorf("%w: token has no exp claim, so its lifetime is unknown", ErrInvalidResponse)
	}
	if !plausible(c.Expiry) {
		return Token{}, fmt.Errorf("%w: token's exp claim is not a plausible time", ErrInvalidResponse)
	}
	tok := Token{Raw: raw, Expiry: c.Expiry}
	if plausible(c.IssuedAt) {
		tok.IssuedAt = c.IssuedAt
	}
	return tok, nil
}

// plausible reports a time after 1970 and within the years RFC 3339 can
// write. The year is UTC's, as every message writes it: asking the local
// zone's would load the zone database in every process, cache hit or not.
func plausible(t time.Time) bool { return t.Unix() > 0 && t.UTC().Year() <= 9999 }

// parseResponse turns the body of a 200 answer into a Token. Only "token" is
// used; "refresh_token" and "expiry" are ignored. The member is found as
// encoding/json would fill a struct field "token" (see tokenMember), but
// without its reflection, which a cold get would pay for in full.
func parseResponse(body []byte) (Token, error) {
	if len(body) == 0 {
		return Token{}, fmt.Errorf("%w: the body is empty", ErrInvalidResponse)
	}
	if !json.Valid(body) {
		return Token{}, fmt.Errorf("%w: the body is not JSON", ErrInvalidResponse)
	}
	v, ok := tokenMember(body)
	if !ok {
		return Token{}, fmt.Errorf("%w: the body is not a JSON object", ErrInvalidResponse)
	}
	if v == nil || string(v) == "null" {
		return Token{}, fmt.Errorf("%w: the body has no \"token\" field", ErrInvalidResponse)
	}
	raw, err := jsonString(v)
	if err != nil {
		return Token{}, fmt.Errorf("%w: the \"token\" field is not a string", ErrInvalidResponse)
	}
	if raw == "" {
		return Token{}, fmt.Errorf("%w: the \"token\" field is empty", ErrInvalidResponse)
	}
	return ParseToken(raw)
}

// tokenMember returns the value of the valid JSON body's "token" member,
// matched as encoding/json matches a field name (exactly or else without
// regard to case; the last match wins), or nil if it has none. ok is false
// if body is neither an object nor null.
func tokenMember(body []byte) (v []byte, ok bool) {
	r := reader{b: body}
	if r.peek() == 'n' {
		return nil, true // null: decodes to no fields at all
	}
	err := r.members(func(name, value []byte) error {
		if n, err := jsonString(name); err == nil && strings.EqualFold(n, "token") {
			v = value
		}
		return nil
	})
	return v, err == nil
}
