package creds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// skewSlack is how much the STS's "expired" may disagree with this
// machine's clock before it is called clock skew rather than bad luck: JWT
// times are whole seconds and verifiers allow a few seconds of leeway.
const skewSlack = time.Minute

// explain turns an exchange failure into one of this package's errors,
// with the fix. pkg/exchange knows nothing of settings, so the names of
// the settings to check (CHAINGUARD_ISSUER, CHAINGUARD_IDENTITY, ...) are
// added here. Each class gets the advice that applies to it: the
// identity-create hint only when the STS itself refused the identity.
func (h *Helper) explain(ctx context.Context, err error, amb AmbientToken, identity string) error {
	var se *exchange.StatusError
	var ue *exchange.UnreachableError
	switch {
	case errors.Is(err, exchange.ErrInvalidIdentity):
		return fmt.Errorf("%w: %s: %w", ErrBadIdentity, h.identitySetting(identity), err)
	case errors.As(err, &se) && se.NotSTS():
		return fmt.Errorf("%w: %s (%w); set it to the STS base URL, e.g. %s, or unset it", ErrIssuerMisconfigured, h.notSTS(), se, exchange.DefaultIssuer)
	case errors.As(err, &se) && se.Temporary():
		return fmt.Errorf("%w: %w; it kept failing after retries, try again later", ErrSTSUnreachable, se)
	case errors.As(err, &se) && se.ServerFault():
		return fmt.Errorf("%w: %w; a server error at the STS or a proxy in front of it, not a problem with the token or identity: try again later, and report it if it persists", ErrSTSFailed, se)
	case errors.As(err, &se) && se.ClockSkew():
		return fmt.Errorf("%w: %w; the ambient token's issuer (%s) dated it ahead of the STS's clock: check the clock (NTP) of this machine and of the token's issuer", ErrClockSkew, se, shown(amb.Issuer))
	case errors.As(err, &se) && se.TokenExpired() && amb.Expiry.Sub(h.now()) > skewSlack:
		return fmt.Errorf("%w: %w; yet by this machine's clock the ambient token (%s) is valid until %s: check this machine's clock (NTP)",
			ErrClockSkew, se, amb.Source, amb.Expiry.UTC().Format(time.RFC3339))
	case errors.As(err, &se):
		return fmt.Errorf("%w: %w; %s", ErrIdentityRejected, se, h.rejectionFix(se, amb, identity))
	case errors.Is(err, exchange.ErrInvalidResponse):
		return fmt.Errorf("%w: %s: %w", ErrIssuerMisconfigured, h.notSTS(), err)
	case errors.As(err, &ue):
		return fmt.Errorf("%w: %w; check CHAINGUARD_ISSUER and the network", ErrSTSUnreachable, ue)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: no token from %s within the time allowed (%v): %w", ErrSTSUnreachable, logsafe.Quote(h.cfg.Issuer, logsafe.DefaultLimit), h.cfg.Timeout, err)
	}
	return err
}

// notSTS names the setting that points at something other than the STS.
// The issuer is the client's (checked by exchange.New: no user info, no
// query; the default filled in), so it can be shown.
func (h *Helper) notSTS() string {
	return fmt.Sprintf("CHAINGUARD_ISSUER=%s does not look like the Chainguard STS", logsafe.Quote(h.cfg.Issuer, logsafe.DefaultLimit))
}

// identitySetting names where the identity came from: CHAINGUARD_IDENTITY,
// or the caller's own (the kubelet's service-account annotation).
func (h *Helper) identitySetting(identity string) string {
	if identity != h.cfg.Identity {
		return "the identity the request named"
	}
	return "CHAINGUARD_IDENTITY"
}

func (h *Helper) rejectionFix(se *exchange.StatusError, amb AmbientToken, identity string) string {
	setting := h.identitySetting(identity)
	iss, sub := shown(amb.Issuer), shown(amb.Subject)
	create := fmt.Sprintf("the ambient token (%s) has iss=%s sub=%s; an identity matching it is created with: %s, then set %s to its id",
		amb.Source, iss, sub, IdentityCommand(amb, ""), setting)
	switch {
	case se.HTTPStatus == http.StatusNotFound && identity != "":
		return fmt.Sprintf("check that %s is the id of an existing identity", withValue(setting, identity))
	case se.HTTPStatus == http.StatusBadRequest:
		return fmt.Sprintf("the STS found the request malformed: check %s and %s",
			withValue(setting, identity), withValue("CHAINGUARD_AUDIENCE", h.cfg.Audience))
	case se.HTTPStatus == http.StatusUnauthorized:
		return "the STS did not accept the ambient token: check it is fresh, has audience " + EnforceAudience + ", and that its issuer publishes its keys; " + create
	}
	return create
}

// shown is s as it may appear in a message: as is when it is short and
// made of characters that can neither break a line nor pass for our own
// punctuation (so copy-pasteable iss/sub values stay readable), quoted and
// capped otherwise. The ambient token's claims are read before the STS
// verified them, so they are untrusted text.
func shown(s string) string {
	if s != "" && len(s) <= logsafe.DefaultLimit && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r > '~' || strings.ContainsRune(`"'\;,`+"`$", r)
	}) {
		return s
	}
	return logsafe.Quote(s, logsafe.DefaultLimit)
}

// checkIssued checks a freshly issued token against this machine's clock.
// A token already expired means this clock is ahead of the STS's; one
// issued more than Margin in the future means it is behind, and would then
// keep (and hand the kubelet) the token longer than it lives.
func checkIssued(tok exchange.Token, now time.Time) error {
	const fix = "check this machine's clock (NTP)"
	if !tok.Expiry.After(now) {
		return fmt.Errorf("%w: the STS issued a token that expired at %s, %s before this machine's time %s; %s",
			ErrClockSkew, tok.Expiry.UTC().Format(time.RFC3339), now.Sub(tok.Expiry).Round(time.Second), now.UTC().Format(time.RFC3339), fix)
	}
	if ahead := tok.IssuedAt.Sub(now); !tok.IssuedAt.IsZero() && ahead > Margin {
		return fmt.Errorf("%w: the STS issued a token at %s, %s ahead of this machine's time %s, so its lifetime would be misjudged; %s",
			ErrClockSkew, tok.IssuedAt.UTC().Format(time.RFC3339), ahead.Round(time.Second), now.UTC().Format(time.RFC3339), fix)
	}
	return nil
}

// withValue names a setting with its value in brackets: quoted, or hidden
// when it might be a secret, as logsafe.Describe does (logsafe.Hidden
// brings its own brackets).
func withValue(setting, v string) string {
	if logsafe.MightBeSecret(v) {
		return setting + " " + logsafe.Hidden(v)
	}
	return setting + " (" + logsafe.Quote(v, logsafe.DefaultLimit) + ")"
}
