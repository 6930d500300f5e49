// Package logsafe makes text that came from outside (a request, a server, a
// setting) safe to put in a one-line message: quoted, escaped and capped, so
// it can neither forge a log line nor flood one.
package logsafe

import (
	"io/fs"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultLimit is the cap most callers want: enough for a host name, an image
// reference or an identity id, far less than a page.
const DefaultLimit = 128

// Quote returns s as a Go-quoted string, at most limit runes of it. Control
// characters, line breaks, invalid UTF-8 and invisible format characters
// (bidi overrides among them) are escaped, so the result is always one line
// of printable text. A longer s is cut and says how long it was.
func Quote(s string, limit int) string {
	if limit < 1 {
		limit = 1
	}
	if utf8.RuneCountInString(s) <= limit {
		return strconv.Quote(s)
	}
	n := 0
	cut := s
	for i := range s {
		if n == limit {
			cut = s[:i]
			break
		}
		n++
	}
	return strconv.Quote(cut) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// Shape describes a value that may be a secret without showing any of it:
// its length, how many dot-separated parts it has, and whether it starts like
// a JWT. It is what a message says about a setting that may hold a token.
func Shape(s string) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteString(" bytes, ")
	b.WriteString(strconv.Itoa(strings.Count(s, ".") + 1))
	b.WriteString(" dot-separated parts")
	switch t := strings.TrimSpace(s); {
	case strings.HasPrefix(t, "eyJ"):
		b.WriteString(", starts like a JWT")
	case strings.Contains(t, "eyJ"):
		b.WriteString(", holds something that starts like a JWT after other text")
	}
	if strings.TrimSpace(s) != s {
		b.WriteString(", surrounding white space")
	}
	return b.String()
}

// Hidden names a value that may be a secret by its shape alone, in the
// words every message uses.
func Hidden(v string) string { return "(value not shown: " + Shape(v) + ")" }

// Describe names a setting's value in a message: quoted (and capped) when
// it cannot be a secret, Hidden when it might be one, so that a token
// pasted into the wrong setting is never echoed.
func Describe(v string) string {
	if MightBeSecret(v) {
		return Hidden(v)
	}
	return Quote(v, DefaultLimit)
}

// MightBeSecret is true for anything that holds a JWT's start ("eyJ" is
// base64url for `{"`) or a run of 40 or more token characters, the shape of
// signatures and opaque bearer tokens (a GitHub token is 40). Host names and
// paths have neither; '-' breaks a run so that UUIDs in paths do not count.
// A Chainguard identity id has such a run (its group's 40 hex digits) but
// names an identity, so it is shown: an operator needs to see which one.
func MightBeSecret(v string) bool {
	if strings.Contains(v, "eyJ") {
		return true
	}
	if isIdentityID(v) {
		return false
	}
	run := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '+' || c == '=' {
			if run++; run >= 40 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// Redacted is what Redact puts where a secret was.
const Redacted = "[REDACTED]"

// minRedactedPart is the shortest dot-separated part of a secret that
// Redact hides on its own. A JWT's payload and signature are far longer; a
// short part (an empty signature, "e30") would hit ordinary text.
const minRedactedPart = 16

// Redact replaces every secret in s with Redacted, and also every
// dot-separated part of a secret that is at least 16 bytes long: text that
// echoes only a JWT's payload or signature must not show that either. Empty
// secrets are ignored. It is the one place this project redacts; messages
// are built without secrets, and this catches what a server echoes back.
func Redact(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		s = strings.ReplaceAll(s, secret, Redacted)
		for part := range strings.SplitSeq(secret, ".") {
			if len(part) >= minRedactedPart {
				s = strings.ReplaceAll(s, part, Redacted)
			}
		}
	}
	return s
}

// FlagError is an error of the flag package fit for a message. The flag
// package quotes what it could not take (an unknown flag's name, a bad
// value), and a person can paste a token anywhere on a command line: every
// argument that MightBeSecret (or whose flag name before '=' might be),
// and every JWT, is replaced by Redacted, and every rune strconv.Quote
// would escape by U+FFFD, so that an argument can neither start a line of
// its own nor turn the text around.
func FlagError(err error, args []string) string {
	var secrets []string
	for _, a := range args {
		name, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		for _, s := range [...]string{a, name, v} {
			if MightBeSecret(s) {
				secrets = append(secrets, s)
			}
		}
	}
	msg := RedactJWTs(Redact(err.Error(), secrets...))
	return strings.Map(func(r rune) rune {
		if !strconv.IsPrint(r) {
			return '\uFFFD'
		}
		return r
	}, msg)
}

// RedactJWTs replaces with Redacted everything in s that starts like a
// JWT ("eyJ", a base64url JSON object) and runs on through the characters a
// JWT is made of. It is for text that outlives the call that wrote it, such
// as the failure record, where the secrets to pass Redact are unknown. It
// scans by hand rather than with a regexp: the regexp package's start-up
// work (its Unicode tables) would be paid by every process of the helper.
func RedactJWTs(s string) string {
	i := strings.Index(s, "eyJ")
	if i < 0 {
		return s
	}
	var b strings.Builder
	for i >= 0 {
		b.WriteString(s[:i])
		b.WriteString(Redacted)
		s = s[i+len("eyJ"):]
		s = strings.TrimLeftFunc(s, isJWTChar)
		i = strings.Index(s, "eyJ")
	}
	b.WriteString(s)
	return b.String()
}

// isJWTChar is true for a base64url character or the dot between a JWT's
// parts.
func isJWTChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
}

// OnlyJWTChars reports whether every byte of s is one isJWTChar accepts. It
// goes byte by byte, not rune by rune as strings.TrimLeftFunc would: a
// cached get runs it over a whole token.
func OnlyJWTChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isJWTChar(rune(s[i])) {
			return false
		}
	}
	return true
}

// FileKind names a file type for messages: "a FIFO (named pipe)", "a
// symbolic link", "a folder", ...
func FileKind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0:
		return "a device"
	case t&fs.ModeDir != 0:
		return "a folder"
	case t == 0:
		return "a regular file"
	}
	return "a special file"
}

// isIdentityID reports the shape of a Chainguard identity id: a group's 40
// lower-case hex digits, then one or more "/"-separated segments of 16,
// as in 720909c9f5279097d847ad02a2f24ba8f59de36a/b6a1d3e7c9f20517.
func isIdentityID(v string) bool {
	group, rest, ok := strings.Cut(v, "/")
	if !ok || len(group) != 40 || !IsLowerHex(group) {
		return false
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if len(seg) != 16 || !IsLowerHex(seg) {
			return false
		}
	}
	return true
}

// IsLowerHex reports whether s is all lower-case hex digits, as identity
// ids and the cache's file names are.
func IsLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
