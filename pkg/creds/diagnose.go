package creds

import (
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// What doctor needs to explain the setup, and the identity-create command
// the rejection messages print. Nothing here returns or shows a token.

// SourceReport is one place the ambient token is looked for.
type SourceReport struct {
	// Name names the place: a setting, a quoted file path, or GitHub
	// Actions OIDC.
	Name string
	// Present reports whether the token is to be had there. The first
	// place where it is, is the one used.
	Present bool
	// Missing says what was not there, when Present is false.
	Missing string
	// Remote says getting the token from here is a network call.
	Remote bool
}

// AmbientSources lists where cfg says to look for the ambient token, in
// the order FindAmbientToken tries them. It reads no token and makes no
// network call.
func AmbientSources(cfg Config) []SourceReport {
	srcs := ambientSources(cfg, nil)
	out := make([]SourceReport, 0, len(srcs))
	for _, s := range srcs {
		_, remote := s.(actionsSource)
		r := SourceReport{Name: s.String(), Present: s.Enabled(), Remote: remote}
		if !r.Present {
			r.Missing = s.Missing()
		}
		out = append(out, r)
	}
	return out
}

// IdentityCommand is the chainctl command that creates an identity
// trusting the token's issuer and exactly its subject, with the
// registry.pull role. chainctl reads --subject-pattern as a regular
// expression, so the subject's metacharacters are escaped. issuerKeys,
// when not empty, is put as it is into --issuer-keys: the variant for an
// issuer whose keys the STS cannot fetch (a cluster whose issuer is not
// public), given the issuer's JWKS or a shell expression that prints it.
//
// The claims come from a token nobody has verified: each value is put in
// single quotes when that is safe to paste into a shell, and is shown
// Go-quoted (and so visibly not pasteable) when it is not.
func IdentityCommand(amb AmbientToken, issuerKeys string) string {
	var b strings.Builder
	b.WriteString("chainctl iam identities create NAME --identity-issuer=")
	b.WriteString(shellWord(amb.Issuer))
	if issuerKeys != "" {
		b.WriteString(" --issuer-keys=")
		b.WriteString(issuerKeys)
	}
	b.WriteString(" --subject-pattern=")
	b.WriteString(shellWord(quoteMeta(amb.Subject)))
	b.WriteString(" --role=registry.pull")
	return b.String()
}

// shellWord is s in single quotes, in which a POSIX shell interprets
// nothing, when s is short printable ASCII without a single quote; else
// logsafe's Go quoting.
func shellWord(s string) string {
	if s != "" && len(s) <= logsafe.DefaultLimit && !strings.ContainsFunc(s, func(r rune) bool {
		return r < ' ' || r > '~' || r == '\''
	}) {
		return "'" + s + "'"
	}
	return logsafe.Quote(s, logsafe.DefaultLimit)
}

// quoteMeta is regexp.QuoteMeta: s with every regular expression
// metacharacter escaped, so a subject pattern matches s alone. It is
// written out because importing regexp for it would run the regexp
// package's start-up work (its Unicode tables) in every process of the
// helper, cached gets included; a test holds it to regexp.QuoteMeta.
func quoteMeta(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`\.+*?()|[]{}^$`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
