package creds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// explain turns an exchange failure into one of this package's errors,
// with the fix.
func (h *Helper) explain(ctx context.Context, err error, amb AmbientToken, identity string) error {
	var se *exchange.StatusError
	var ue *exchange.UnreachableError
	switch {
	case errors.As(err, &se) && se.Temporary():
		return fmt.Errorf("%w: %v; it kept failing after retries, try again later", ErrSTSUnreachable, se)
	case errors.As(err, &se):
		return fmt.Errorf("%w: %v; %s", ErrIdentityRejected, se, h.rejectionFix(se, amb, identity))
	case errors.As(err, &ue):
		return fmt.Errorf("%w: %v", ErrSTSUnreachable, ue)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: no token from %s within the time allowed (%v): %v", ErrSTSUnreachable, h.cfg.Issuer, h.cfg.Timeout, err)
	}
	return err
}

func (h *Helper) rejectionFix(se *exchange.StatusError, amb AmbientToken, identity string) string {
	// Name the setting that chose the identity: CHAINGUARD_IDENTITY, or the
	// caller's own (the kubelet's service-account annotation).
	setting := "CHAINGUARD_IDENTITY"
	if identity != h.cfg.Identity {
		setting = "the identity the request named"
	}
	create := fmt.Sprintf("the ambient token (%s) has iss=%s sub=%s; an identity matching it is created with: chainctl iam identities create NAME --identity-issuer=%s --subject-pattern=%s --role=registry.pull, then set %s to its id",
		amb.Source, amb.Issuer, amb.Subject, amb.Issuer, regexp.QuoteMeta(amb.Subject), setting)
	switch {
	case se.HTTPStatus == http.StatusNotFound && se.Code == 0:
		return fmt.Sprintf("check that CHAINGUARD_ISSUER (%s) is the Chainguard STS", h.cfg.Issuer)
	case se.HTTPStatus == http.StatusNotFound && identity != "":
		return fmt.Sprintf("check that %s (%s) is the id of an existing identity", setting, identity)
	case se.HTTPStatus == http.StatusUnauthorized:
		return "the STS did not accept the ambient token: check it is fresh, has audience " + EnforceAudience + ", and that its issuer publishes its keys; " + create
	}
	return create
}
