package creds

import (
	"errors"
	"strings"
)

// The kinds of failure a person must act on. Errors returned by Helper wrap
// one of these (check with errors.Is) and carry the details and the fix in
// their message. No message ever contains a token.
var (
	// ErrNoAmbientToken: no ambient OIDC token was found anywhere looked.
	ErrNoAmbientToken = errors.New("no ambient OIDC token found")
	// ErrBadAmbientToken: a token was found but cannot be used (not a JWT,
	// unreadable file).
	ErrBadAmbientToken = errors.New("the ambient token cannot be used")
	// ErrTokenExpired: the ambient token's exp has passed.
	ErrTokenExpired = errors.New("the ambient token has expired")
	// ErrWrongAudience: the ambient token was not issued for the STS.
	ErrWrongAudience = errors.New("the ambient token has the wrong audience")
	// ErrIdentityRejected: the STS refused the exchange (bad token, unknown
	// identity, identity that does not match the token).
	ErrIdentityRejected = errors.New("the STS rejected the exchange")
	// ErrSTSUnreachable: the STS could not be reached, or kept failing.
	ErrSTSUnreachable = errors.New("the STS is unreachable")
)

// redactedError keeps an error's chain for errors.Is/As but replaces any
// secret in its message. It is the last line of defence: messages are built
// without tokens, but a server may echo one back.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with every non-empty secret in its message replaced.
func redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "[REDACTED]")
		}
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}
