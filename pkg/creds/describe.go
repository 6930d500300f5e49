package creds

import (
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// describeValue names a setting's value in a message: quoted (and capped)
// when it cannot be a secret, described only by its shape when it might be
// one, so that a token pasted into the wrong setting is never echoed.
func describeValue(v string) string {
	if mightBeSecret(v) {
		return "(value not shown: " + logsafe.Shape(v) + ")"
	}
	return logsafe.Quote(v, logsafe.DefaultLimit)
}

// mightBeSecret is true for anything that holds a JWT's start ("eyJ" is
// base64url for `{"`) or a run of 40 or more token characters, the shape of
// signatures and opaque bearer tokens (a GitHub token is 40). Host names and
// paths have neither; '-' breaks a run so that UUIDs in paths do not count.
func mightBeSecret(v string) bool {
	if strings.Contains(v, "eyJ") {
		return true
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
