package exchange

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
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

// ParseToken reads the expiry of a JWT without verifying its signature.
//
// Verification is the registry's job; the helper only needs to know how long
// it may hand the token out. raw must be a signed, three-part JWT with an exp
// claim; otherwise the error wraps ErrInvalidResponse. Errors never include
// raw or any part of it.
func ParseToken(raw string) (Token, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return Token{}, fmt.Errorf("%w: token is not a JWT (a JWT has 3 dot-separated parts, this has %d)", ErrInvalidResponse, len(parts))
	}
	for i, name := range [...]string{"header", "claims", "signature"} {
		if parts[i] == "" {
			return Token{}, fmt.Errorf("%w: token is not a signed JWT (its %s part is empty)", ErrInvalidResponse, name)
		}
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &claims); err != nil {
		// jwt's own messages can quote bits of the input (a JSON syntax
		// error names the offending character, a number error quotes the
		// number), so only the category is reported.
		what := "it is not a well-formed JWT"
		if errors.Is(err, jwt.ErrTokenUnverifiable) {
			what = "its alg header is missing or unknown"
		}
		return Token{}, fmt.Errorf("%w: token is not a usable JWT: %s", ErrInvalidResponse, what)
	}
	if claims.ExpiresAt == nil {
		return Token{}, fmt.Errorf("%w: token has no exp claim, so its lifetime is unknown", ErrInvalidResponse)
	}
	exp := claims.ExpiresAt.Time
	if exp.Unix() <= 0 || exp.Year() > 9999 {
		return Token{}, fmt.Errorf("%w: token's exp claim is not a plausible time", ErrInvalidResponse)
	}
	tok := Token{Raw: raw, Expiry: exp}
	if claims.IssuedAt != nil && claims.IssuedAt.Unix() > 0 && claims.IssuedAt.Year() <= 9999 {
		tok.IssuedAt = claims.IssuedAt.Time
	}
	return tok, nil
}

// parseResponse turns the body of a 200 answer into a Token. Only "token" is
// used; "refresh_token" and "expiry" are ignored.
func parseResponse(body []byte) (Token, error) {
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
