package exchange

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claimSet is the jwt.Claims that ParseClaims hands golang-jwt: the
// registered claims, decoded without reflection.
//
// Why not jwt.RegisteredClaims: encoding/json decodes it by reflection,
// and in a process that lives for one call that first use is most of the
// cost. A cached get reads its caller from the ambient token: 165,000
// instructions of its 1.13 million with RegisteredClaims, 88,000 with this
// reader, which itself takes 19,000 (callgrind). golang-jwt still splits
// the token, decodes its parts and reads its header, and encoding/json
// still checks the claims are well-formed JSON before UnmarshalJSON sees
// them. What this reader accepts, and the values it gives, are those of
// jwt.RegisteredClaims: FuzzParseClaimsAgreesWithRegisteredClaims holds it
// to that.
type claimSet struct {
	iss, sub, jti string
	aud           jwt.ClaimStrings
	exp, nbf, iat *jwt.NumericDate
}

// The jwt.Claims methods. Nothing here validates claims: ParseClaims
// never asks golang-jwt to.

func (c *claimSet) GetExpirationTime() (*jwt.NumericDate, error) { return c.exp, nil }
func (c *claimSet) GetIssuedAt() (*jwt.NumericDate, error)       { return c.iat, nil }
func (c *claimSet) GetNotBefore() (*jwt.NumericDate, error)      { return c.nbf, nil }
func (c *claimSet) GetIssuer() (string, error)                   { return c.iss, nil }
func (c *claimSet) GetSubject() (string, error)                  { return c.sub, nil }
func (c *claimSet) GetAudience() (jwt.ClaimStrings, error)       { return c.aud, nil }

// errClaims is what the reader returns for claims jwt.RegisteredClaims would
// refuse. ParseClaims reports only that the token is malformed, so one
// error serves.
var errClaims = errors.New("claims are not those of a JWT")

// UnmarshalJSON reads the members of the claims object that
// jwt.RegisteredClaims has fields for, as encoding/json would fill them:
// names match exactly or else case-insensitively, the last of a repeated
// name wins, null leaves a string as it was and clears a time, a time may
// be a number or a string holding one. Other members are skipped.
func (c *claimSet) UnmarshalJSON(b []byte) error {
	r := reader{b: b}
	if !r.skip('{') {
		return errClaims
	}
	if r.skip('}') {
		return r.end()
	}
	for {
		if r.peek() != '"' {
			return errClaims
		}
		name, ok := r.value()
		if !ok || !r.skip(':') {
			return errClaims
		}
		v, ok := r.value()
		if !ok {
			return errClaims
		}
		if err := c.set(name, v); err != nil {
			return err
		}
		if r.skip('}') {
			return r.end()
		}
		if !r.skip(',') {
			return errClaims
		}
	}
}

// set stores the JSON value v of the member whose raw (quoted) name is
// rawName.
func (c *claimSet) set(rawName, v []byte) error {
	name, err := jsonString(rawName)
	if err != nil {
		return err
	}
	switch claimName(name) {
	case "iss":
		return setString(&c.iss, v)
	case "sub":
		return setString(&c.sub, v)
	case "jti":
		return setString(&c.jti, v)
	case "aud":
		return setAudience(&c.aud, v)
	case "exp":
		return setDate(&c.exp, v)
	case "nbf":
		return setDate(&c.nbf, v)
	case "iat":
		return setDate(&c.iat, v)
	}
	return nil
}

// claimNames are the members jwt.RegisteredClaims has fields for.
var claimNames = [...]string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

// claimName is the registered claim name matches as encoding/json matches
// a field name, without regard to case; "" if none. (encoding/json tries
// an exact match first, which finds the same field here: no two claim
// names differ only in case.)
func claimName(name string) string {
	for _, n := range claimNames {
		if strings.EqualFold(name, n) {
			return n
		}
	}
	return ""
}

func setString(dst *string, v []byte) error {
	switch v[0] {
	case 'n':
		return nil
	case '"':
		s, err := jsonString(v)
		if err == nil {
			*dst = s
		}
		return err
	}
	return errClaims
}

// setAudience reads aud as jwt.ClaimStrings does: a string, or an array of
// nothing but strings.
func setAudience(dst *jwt.ClaimStrings, v []byte) error {
	switch v[0] {
	case 'n':
		return nil // null leaves aud as it was
	case '[':
	default: // a string, or the error setString gives anything else
		var s string
		if err := setString(&s, v); err != nil {
			return err
		}
		*dst = jwt.ClaimStrings{s}
		return nil
	}
	r := reader{b: v}
	r.skip('[')
	var aud jwt.ClaimStrings
	if r.skip(']') {
		*dst = aud
		return nil
	}
	for {
		if r.peek() != '"' {
			return errClaims
		}
		e, ok := r.value()
		if !ok {
			return errClaims
		}
		s, err := jsonString(e)
		if err != nil {
			return err
		}
		aud = append(aud, s)
		if r.skip(']') {
			*dst = aud
			return nil
		}
		if !r.skip(',') {
			return errClaims
		}
	}
}

// setDate reads a time as jwt.NumericDate does: seconds since the epoch,
// a JSON number or a string holding one, kept to the second.
func setDate(dst **jwt.NumericDate, v []byte) error {
	var num string
	switch {
	case v[0] == 'n':
		*dst = nil
		return nil
	case v[0] == '"':
		// Rare enough to leave to encoding/json, which knows which
		// strings hold a JSON number.
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return errClaims
		}
		num = n.String()
	case v[0] == '-' || '0' <= v[0] && v[0] <= '9':
		num = string(v)
	default:
		return errClaims
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return errClaims
	}
	whole, frac := math.Modf(f)
	*dst = jwt.NewNumericDate(time.Unix(int64(whole), int64(frac*1e9)))
	return nil
}

// jsonString unquotes the JSON string v. Plain ASCII without escapes is
// sliced; anything else is left to encoding/json, whose handling of
// escapes and of invalid UTF-8 this must match.
func jsonString(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", errClaims
	}
	inner := v[1 : len(v)-1]
	for _, ch := range inner {
		if ch == '\\' || ch == '"' || ch < 0x20 || ch >= 0x80 {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", errClaims
			}
			return s, nil
		}
	}
	return string(inner), nil
}

// reader walks JSON that encoding/json has already found well-formed. It
// still never reads past its input or loops without progress, whatever it
// is given: it finds the extent of a value, it does not validate it.
type reader struct {
	b []byte
	i int
}

func (r *reader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (r *reader) peek() byte {
	r.ws()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

// skip consumes ch, after white space, if it is next.
func (r *reader) skip(ch byte) bool {
	if r.peek() == ch {
		r.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (r *reader) end() error {
	if r.peek() != 0 || r.i != len(r.b) {
		return errClaims
	}
	return nil
}

// value consumes the next value and returns its bytes: a string with its
// quotes, an object or array with its brackets, or a literal or number.
func (r *reader) value() ([]byte, bool) {
	r.ws()
	start := r.i
	depth := 0
	for r.i < len(r.b) {
		ch := r.b[r.i]
		switch {
		case ch == '"':
			if !r.str() {
				return nil, false
			}
			if depth == 0 {
				return r.b[start:r.i], true
			}
			continue
		case ch == '{' || ch == '[':
			depth++
		case ch == '}' || ch == ']':
			if depth == 0 {
				return r.b[start:r.i], r.i > start
			}
			depth--
			if depth == 0 {
				r.i++
				return r.b[start:r.i], true
			}
		case depth == 0 && (ch == ',' || ch == ':' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'):
			return r.b[start:r.i], r.i > start
		}
		r.i++
	}
	return r.b[start:r.i], depth == 0 && r.i > start
}

// str consumes the string that starts at r.i, escapes and all.
func (r *reader) str() bool {
	for r.i++; r.i < len(r.b); r.i++ {
		switch r.b[r.i] {
		case '\\':
			r.i++
		case '"':
			r.i++
			return true
		}
	}
	return false
}
