package exchange

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// MaxIdentityLen bounds an identity id. Chainguard's ids are two hex
// segments joined by '/', well under 100 characters.
const MaxIdentityLen = 256

// ErrInvalidIdentity means the identity to request is not a plausible
// identity id. Errors wrapping it describe the value's shape and what is
// wrong with it, never the value itself: it may be a token pasted into the
// wrong place.
var ErrInvalidIdentity = errors.New("not a plausible identity id")

// CheckIdentity reports whether id can be sent to the STS as an identity
// id: 1 to MaxIdentityLen characters of ASCII letters, digits and "-_./:",
// and not something shaped like a JWT. The empty id means "no identity" and
// is accepted. Identities come from settings and, in kubelet mode, from
// service-account annotations that whoever can edit a service account
// writes; checking them keeps control characters out of the form and of
// every message that names the identity.
func CheckIdentity(id string) error {
	if id == "" {
		return nil
	}
	fail := func(why string) error {
		return fmt.Errorf("%w: the value (%s) %s; an identity id is at most %d characters of letters, digits, '-', '_', '.', '/' and ':'",
			ErrInvalidIdentity, logsafe.Shape(id), why, MaxIdentityLen)
	}
	if strings.Contains(id, "eyJ") && strings.Count(id, ".") >= 2 {
		return fail("looks like a JWT, not an identity id")
	}
	if len(id) > MaxIdentityLen {
		return fail("is too long")
	}
	for i, r := range id {
		if !identityRune(r) {
			what := strconv.QuoteRune(r)
			if r == utf8.RuneError {
				what = "invalid UTF-8"
			}
			return fail("contains " + what + " at byte " + strconv.Itoa(i))
		}
	}
	return nil
}

func identityRune(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("-_./:", r)
}
