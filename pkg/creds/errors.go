package creds

import (
	"errors"
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
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
	// ErrIdentityRejected: the STS itself refused the exchange, in its own
	// error format (401/403 bad token or identity mismatch, 404 unknown
	// identity, 400 malformed request). The message carries the STS's words
	// and the token's iss/sub, so an identity can be made to match.
	ErrIdentityRejected = errors.New("the STS rejected the exchange")
	// ErrSTSUnreachable: no answer from the STS (connection refused, DNS,
	// TLS, timeout), or it kept answering 408/429/502/503/504 after retries.
	ErrSTSUnreachable = errors.New("the STS is unreachable")
	// ErrSTSFailed: the STS, or a proxy in front of it, answered with a
	// server error that is not retried (500, 501, ...). Nothing about the
	// token or identity is known to be wrong; try again later.
	ErrSTSFailed = errors.New("the STS failed")
	// ErrIssuerMisconfigured: CHAINGUARD_ISSUER does not point at the
	// Chainguard STS: the answer was a redirect, a 4xx page that is not the
	// STS's error format (a web server's 404, an HTML page), grpc-gateway's
	// "no such route", or a 200 without a usable token (a captive portal).
	ErrIssuerMisconfigured = errors.New("wrong STS URL")
	// ErrClockSkew: clocks disagree by more than the verifiers allow: the
	// STS says the ambient token is not valid yet, or says it expired while
	// this machine's clock says it has time left, or it issued a token that
	// this machine's clock finds already expired or issued in the future.
	ErrClockSkew = errors.New("the clocks disagree")
	// ErrBadIdentity: the identity to request (CHAINGUARD_IDENTITY, or a
	// service account's annotation) is not a plausible identity id. The
	// message describes its shape, never the value.
	ErrBadIdentity = errors.New("the identity is not a valid identity id")
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

// redact returns err with every secret in its message, and every long
// dot-separated part of one, replaced (see logsafe.Redact).
func redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := logsafe.Redact(msg, secrets...)
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

// classes lists the kinds above, with the names docs/reference.md and the
// failure record give them, for sharedFailure and className.
var classes = []struct {
	err  error
	name string
}{
	{ErrNoAmbientToken, "ErrNoAmbientToken"}, {ErrBadAmbientToken, "ErrBadAmbientToken"},
	{ErrTokenExpired, "ErrTokenExpired"}, {ErrWrongAudience, "ErrWrongAudience"},
	{ErrIdentityRejected, "ErrIdentityRejected"}, {ErrSTSUnreachable, "ErrSTSUnreachable"},
	{ErrSTSFailed, "ErrSTSFailed"}, {ErrIssuerMisconfigured, "ErrIssuerMisconfigured"},
	{ErrClockSkew, "ErrClockSkew"}, {ErrBadIdentity, "ErrBadIdentity"},
}

// sharedError is a failure another process had for the same key while this
// one waited for it, replayed from the cache's failure marker. It keeps the
// kind, so errors.Is works as for a failure of our own.
type sharedError struct {
	msg   string
	class error
}

func (e *sharedError) Error() string { return e.msg }
func (e *sharedError) Unwrap() error { return e.class }

// sharedFailure rebuilds a recorded failure: every message of this package
// starts with its kind's text, which gives the kind back.
func sharedFailure(msg string) error {
	msg += " (another process failed so while this one waited; not repeated)"
	for _, c := range classes {
		if strings.HasPrefix(msg, c.err.Error()+":") {
			return &sharedError{msg: msg, class: c.err}
		}
	}
	return &sharedError{msg: msg}
}
