package creds

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// Pull is one image pull the kubelet asks credentials for.
type Pull struct {
	// Registry is the image's registry host, port included.
	Registry string
	// ServiceAccountToken is the pod's own token, when the kubelet sent
	// one; empty means the node's ambient token.
	ServiceAccountToken string
	// Identity, when not empty, replaces the configured identity.
	// IdentitySource names where it came from, since that is where a
	// failure's fix is (a service account's annotation).
	Identity, IdentitySource string
}

// Credential is a registry credential and how long it may be reused.
type Credential struct {
	Username, Password string
	// CacheFor is the token's life left less Margin, in whole seconds: a
	// caller must drop the credential before this helper itself would.
	CacheFor time.Duration
}

// PullCredential returns the credential for one kubelet pull, through the
// same cache and exchange as Get. ok is false, with no error, when the
// helper does not serve p.Registry.
func (h *Helper) PullCredential(ctx context.Context, p Pull) (cred Credential, ok bool, err error) {
	if !h.Serves(p.Registry) {
		return Credential{}, false, nil
	}
	// As GetContext: within the configured timeout whatever the caller's
	// deadline, so that every caller of the library is bounded.
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	cred, err = h.pullCredential(ctx, p)
	if err != nil {
		h.recordFailure("kubelet", NormalizeHost(p.Registry), err)
		return Credential{}, false, err
	}
	return cred, true, nil
}

// pullCredential is PullCredential for a served registry.
func (h *Helper) pullCredential(ctx context.Context, p Pull) (Credential, error) {
	identity := h.cfg.Identity
	source := cmp.Or(p.IdentitySource, "the request")
	if p.Identity != "" {
		// Whoever can edit a service account writes it: check it before it
		// reaches the STS form or any message.
		if err := exchange.CheckIdentity(p.Identity); err != nil {
			return Credential{}, fmt.Errorf("%w: %s: %w", ErrBadIdentity, source, err)
		}
		identity = p.Identity
	}
	var tok exchange.Token
	var err error
	if p.ServiceAccountToken != "" {
		var amb AmbientToken
		if amb, err = h.ambientFrom(p.ServiceAccountToken, "the pod's service-account token"); err != nil {
			return Credential{}, err
		}
		tok, err = h.tokenFor(ctx, amb, identity)
	} else {
		// Node mode: the node's ambient token, as get finds it.
		tok, err = h.get(ctx, identity)
	}
	if err != nil {
		if p.Identity != "" {
			// Say where the identity came from: the fix is there.
			err = fmt.Errorf("identity %s from %s: %w", logsafe.Describe(identity), source, err)
		}
		return Credential{}, err
	}
	cacheFor := max(0, tok.Expiry.Sub(h.now())-Margin).Truncate(time.Second)
	return Credential{Username: Username, Password: tok.Raw, CacheFor: cacheFor}, nil
}
