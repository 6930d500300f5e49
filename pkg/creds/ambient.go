package creds

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// maxTokenSize caps what is read from a token file or endpoint: a JWT is a
// few KiB; anything far larger is not one.
const maxTokenSize = 64 << 10

// AmbientToken is the OIDC token the workload already has. Its claims are
// read without verifying the signature: the STS verifies it, and the claims
// are needed only to check it early, explain failures and key the cache.
type AmbientToken struct {
	raw string
	// Source says where the token came from, for messages.
	Source   string
	Issuer   string
	Subject  string
	Audience []string
	Expiry   time.Time
}

// Raw returns the token itself, for sending to the STS. Never log it.
func (t AmbientToken) Raw() string { return t.raw }

// String describes the token without its secret. The claims are unverified
// text, shown only as shown lets them be.
func (t AmbientToken) String() string {
	return fmt.Sprintf("token from %s (iss=%s sub=%s aud=%s exp=%s)",
		t.Source, shown(t.Issuer), shown(t.Subject), shown(strings.Join(t.Audience, ",")), t.Expiry.UTC().Format(time.RFC3339))
}

// GoString keeps %#v from printing the secret.
func (t AmbientToken) GoString() string { return "creds.AmbientToken{" + t.String() + "}" }

// ParseAmbientToken reads the claims of an ambient token with
// exchange.ParseClaims, without verifying it: the STS does that. source
// names where it came from, for error messages. Surrounding white space (a
// file's trailing newline) is ignored; any other wrapping is an error that
// describes the value's shape and never shows it. A token without exp
// parses, and Check refuses it.
func ParseAmbientToken(raw, source string) (AmbientToken, error) {
	raw = strings.TrimSpace(raw)
	c, err := exchange.ParseClaims(raw)
	if err != nil {
		return AmbientToken{}, fmt.Errorf("%w: the token from %s is not a JWT (%s); it must be an OIDC ID token, with nothing around it but white space",
			ErrBadAmbientToken, source, logsafe.Shape(raw))
	}
	return AmbientToken{raw: raw, Source: source, Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience, Expiry: c.Expiry}, nil
}

// Check is the pre-flight check of the token against what the STS needs, so
// the common mistakes get a precise message instead of the STS's.
func (t AmbientToken) Check(now time.Time) error {
	if t.Expiry.IsZero() {
		return fmt.Errorf("%w: the token from %s has no exp claim; use a short-lived OIDC token", ErrBadAmbientToken, t.Source)
	}
	if !now.Before(t.Expiry) {
		return fmt.Errorf("%w: the token from %s expired at %s (%s ago); projected tokens are refreshed by the kubelet, so check the token path, or mint a new token",
			ErrTokenExpired, t.Source, t.Expiry.UTC().Format(time.RFC3339), now.Sub(t.Expiry).Round(time.Second))
	}
	if !slices.Contains(t.Audience, EnforceAudience) {
		found := "none"
		if len(t.Audience) > 0 {
			found = strings.Join(t.Audience, ",")
		}
		return fmt.Errorf("%w: the token from %s has audience %s, but the STS needs %q; request or project the token with audience %s",
			ErrWrongAudience, t.Source, logsafe.Quote(found, logsafe.DefaultLimit), EnforceAudience, EnforceAudience)
	}
	return nil
}

// pathLimit caps a path shown in a message.
const pathLimit = 256

// LooksLikeJWT tells a JWT from a path, as CHAINGUARD_IDENTITY_TOKEN may be
// either: a JWT's header is base64url JSON, so it starts "eyJ" and has
// exactly three dot-separated parts. White space around s is ignored, as
// the helper ignores it: a token read from a file ends in a newline, and
// must not pass for a path.
func LooksLikeJWT(s string) bool {
	s = strings.TrimSpace(s)
	return hasJWTShape(s) && !strings.ContainsAny(s, "/\\ \n")
}

// hasJWTShape is the part of LooksLikeJWT that a string already known to
// hold only JWT characters (logsafe.OnlyJWTChars) still needs.
func hasJWTShape(s string) bool {
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2
}

// readTokenFile reads a token file; source names the file in messages.
func readTokenFile(path, source string) (AmbientToken, error) {
	s, fail := readTokenText(path)
	if fail != nil {
		return AmbientToken{}, fail(source)
	}
	return ParseAmbientToken(s, source)
}

// readTokenText reads the text of a token file, white space trimmed. Links
// are followed (the kubelet's projected tokens are symlinks into a ..data
// folder), but only a regular file is opened, without blocking: a FIFO,
// socket or device fails at once. On failure it returns the error to give,
// for the file as the caller names it: how to name it may depend on the
// failure, and the file is read once whatever the name.
func readTokenText(path string) (string, func(source string) error) {
	f, fi, err := openRegular(path, true)
	if err != nil {
		var nr *notRegularError
		var pe *fs.PathError
		switch {
		case errors.As(err, &nr):
			return "", func(source string) error {
				return fmt.Errorf("%w: %s is %s, not a regular file; point it at the token file itself", ErrBadAmbientToken, source, logsafe.FileKind(nr.mode))
			}
		case errors.Is(err, fs.ErrNotExist):
			return "", func(source string) error {
				return fmt.Errorf("%w: %s does not exist; check the path: %w", ErrBadAmbientToken, source, fs.ErrNotExist)
			}
		case errors.As(err, &pe):
			err = pe.Err // its text repeats the path unquoted
		}
		return "", func(source string) error {
			return fmt.Errorf("%w: cannot read %s: %w; check the path and its permissions", ErrBadAmbientToken, source, err)
		}
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	b, err := readSized(f, fi.Size(), maxTokenSize+1)
	switch {
	case err != nil:
		return "", func(source string) error {
			return fmt.Errorf("%w: cannot read %s: %w", ErrBadAmbientToken, source, err)
		}
	case len(b) > maxTokenSize:
		return "", func(source string) error {
			return fmt.Errorf("%w: %s is larger than %d bytes, so it is not a token file", ErrBadAmbientToken, source, maxTokenSize)
		}
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", func(source string) error {
			return fmt.Errorf("%w: %s is empty; the token has not been written yet, or the wrong file is named", ErrBadAmbientToken, source)
		}
	}
	return s, nil
}
