package exchange

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// parseUnverified decodes a compact JWT's parts as golang-jwt's
// Parser.ParseUnverified does, with the registered claims read into rc, and
// fails where it fails: errMalformed where it returns ErrTokenMalformed,
// errUnverifiable where it returns ErrTokenUnverifiable, checked in its
// order.
//
// Why not ParseUnverified itself: it decodes the header into a
// map[string]any and the claims through encoding/json's reflection, and a
// cached get reads its caller's claims from the ambient token in a process
// that lives for one call, where that first use of reflection is most of
// the cost: ParseClaims took 95,000 of a cached get's 1,040,000
// instructions through ParseUnverified (with claimSet as its jwt.Claims),
// and 60,000 this way,
// most of them checking the JSON and decoding base64 (callgrind). golang-jwt
// still names the algorithms it knows (jwt.GetSigningMethod), and is the
// reference: the tests hold this to ParseUnverified with
// jwt.RegisteredClaims for any header, claims and signature.
func parseUnverified(header, payload, signature string, rc *claimSet) error {
	enc := base64.RawURLEncoding
	// One buffer for the three parts in turn: nothing decoded is kept.
	n := max(enc.DecodedLen(len(header)), enc.DecodedLen(len(payload)), enc.DecodedLen(len(signature)))
	buf := make([]byte, n)
	decode := func(part string) ([]byte, bool) {
		m, err := enc.Decode(buf, []byte(part))
		return buf[:m], err == nil
	}
	b, ok := decode(header)
	if !ok || !json.Valid(b) {
		return errMalformed
	}
	alg, err := headerAlg(b)
	if err != nil {
		return err
	}
	if b, ok = decode(payload); !ok || !json.Valid(b) {
		return errMalformed
	}
	// Claims that are null leave them unset, as encoding/json does.
	if r := (reader{b: b}); r.peek() != 'n' {
		if err := rc.read(b); err != nil {
			return err
		}
	}
	if alg == "" || jwt.GetSigningMethod(alg) == nil {
		return errUnverifiable
	}
	if _, ok := decode(signature); !ok {
		return errMalformed
	}
	return nil
}

// The two ways parseUnverified fails, as golang-jwt's two categories.
var (
	errMalformed    = errors.New("malformed JWT")
	errUnverifiable = errors.New("JWT with a missing or unknown alg")
)

// headerAlg returns the alg of the JWT header b, well-formed JSON, as
// golang-jwt finds it after decoding b into a map[string]any: the last
// member named exactly "alg", if it is a string; "" if there is none. The
// decoding refuses b if it is not an object or null, or if it holds a
// number a float64 cannot hold.
func headerAlg(b []byte) (string, error) {
	if !numbersFit(b) {
		return "", errMalformed
	}
	r := reader{b: b}
	if r.peek() == 'n' {
		return "", nil // null: no header at all
	}
	alg := ""
	err := r.members(func(name, v []byte) error {
		k, err := jsonString(name)
		if err != nil || k != "alg" {
			return err
		}
		alg = ""
		if v[0] == '"' {
			alg, err = jsonString(v)
		}
		return err
	})
	return alg, err
}

// numbersFit reports whether every number in the well-formed JSON b
// parses as a float64, as decoding it into an interface{} needs.
func numbersFit(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch ch := b[i]; {
		case ch == '"':
			r := reader{b: b, i: i}
			r.str()
			i = r.i - 1
		case ch == '-' || '0' <= ch && ch <= '9':
			j := i
			for j < len(b) && strings.IndexByte("+-.0123456789eE", b[j]) >= 0 {
				j++
			}
			if _, err := strconv.ParseFloat(string(b[i:j]), 64); err != nil {
				return false
			}
			i = j - 1
		}
	}
	return true
}

// claimSet is the Claims that read reads. What it accepts, and the values
// it gives, are those of jwt.RegisteredClaims:
// FuzzParseClaimsAgreesWithRegisteredClaims holds it to that.
type claimSet struct{ Claims }

// read reads the members of the claims object b, well-formed JSON, that
// jwt.RegisteredClaims has fields for, as encoding/json would fill them:
// names match exactly or else case-insensitively, the last of a repeated
// name wins, null leaves a string as it was and clears a time, a time may
// be a number or a string holding one. jti and nbf are not kept, but a
// token whose jti or nbf RegisteredClaims refuses is refused. Other
// members are skipped.
func (c *claimSet) read(b []byte) error {
	r := reader{b: b}
	return r.members(c.set)
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
		return setString(&c.Issuer, v)
	case "sub":
		return setString(&c.Subject, v)
	case "jti":
		return setString(new(string), v)
	case "aud":
		return setAudience(&c.Audience, v)
	case "exp":
		return setDate(&c.Expiry, v)
	case "nbf":
		return setDate(new(time.Time), v)
	case "iat":
		return setDate(&c.IssuedAt, v)
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
	return errMalformed
}

// setAudience reads aud as jwt.ClaimStrings does: a string, or an array of
// nothing but strings.
func setAudience(dst *[]string, v []byte) error {
	switch v[0] {
	case 'n':
		return nil // null leaves aud as it was
	case '[':
	default: // a string, or the error setString gives anything else
		var s string
		if err := setString(&s, v); err != nil {
			return err
		}
		*dst = []string{s}
		return nil
	}
	r := reader{b: v}
	r.skip('[')
	var aud []string
	if r.skip(']') {
		*dst = aud
		return nil
	}
	for {
		if r.peek() != '"' {
			return errMalformed
		}
		e, ok := r.value()
		if !ok {
			return errMalformed
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
			return errMalformed
		}
	}
}

// setDate reads a time as jwt.NumericDate does: seconds since the epoch,
// a JSON number or a string holding one, kept to the second; null is no
// time.
func setDate(dst *time.Time, v []byte) error {
	var d jwt.NumericDate
	switch {
	case v[0] == 'n':
		*dst = time.Time{}
		return nil
	case v[0] == '"':
		// Rare: golang-jwt's own reading, through encoding/json, which
		// knows which strings hold a JSON number.
		if err := d.UnmarshalJSON(v); err != nil {
			return errMalformed
		}
	case v[0] == '-' || '0' <= v[0] && v[0] <= '9':
		// NumericDate.UnmarshalJSON's arithmetic, without its reflection.
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return errMalformed
		}
		whole, frac := math.Modf(f)
		d = *jwt.NewNumericDate(time.Unix(int64(whole), int64(frac*1e9)))
	default:
		return errMalformed
	}
	*dst = d.Time
	return nil
}

// jsonString unquotes the JSON string v. Plain ASCII without escapes is
// sliced; anything else is left to encoding/json, whose handling of
// escapes and of invalid UTF-8 this must match.
func jsonString(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", errMalformed
	}
	inner := v[1 : len(v)-1]
	for _, ch := range inner {
		if ch == '\\' || ch == '"' || ch < 0x20 || ch >= 0x80 {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", errMalformed
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
		return errMalformed
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

// members calls fn with the name (quoted, as it stands) and the value of
// each member of the object r holds next, in order. It returns
// errMalformed if r holds no object, or the first error fn returns.
func (r *reader) members(fn func(name, v []byte) error) error {
	if !r.skip('{') {
		return errMalformed
	}
	for !r.skip('}') {
		name, ok := r.value()
		if !ok || !r.skip(':') {
			return errMalformed
		}
		v, ok := r.value()
		if !ok {
			return errMalformed
		}
		if err := fn(name, v); err != nil {
			return err
		}
		r.skip(',')
	}
	return r.end()
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
