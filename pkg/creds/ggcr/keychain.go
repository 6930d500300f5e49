// Package ggcr is a go-containerregistry Keychain backed by a
// *creds.Helper, for Go programs that pull in-process. Unlike
// authn.NewKeychainFromHelper, which answers any error from a helper with
// anonymous access, it returns the helper's error, so a failed pull says
// why (no ambient token, identity refused, STS unreachable) and how to fix
// it, instead of ending in the registry's 401.
//
//	cfg, err := creds.LoadConfig(os.Getenv)
//	...
//	h, err := creds.New(cfg)
//	...
//	kc := authn.NewMultiKeychain(ggcr.Keychain(h), authn.DefaultKeychain)
//	img, err := remote.Image(ref, remote.WithAuthFromKeychain(kc), remote.WithContext(ctx))
//
// It is a package of its own so that pkg/creds, and with it the
// credential-helper binary, does not import go-containerregistry.
package ggcr

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// Keychain returns a Keychain that answers for the registries h serves.
// Every other registry resolves to authn.Anonymous, as a keychain that has
// nothing for it should, so it composes with authn.NewMultiKeychain.
func Keychain(h *creds.Helper) authn.Keychain { return keychain{h} }

type keychain struct{ h *creds.Helper }

// Resolve implements authn.Keychain.
func (k keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

// ResolveContext implements authn.ContextKeychain: the exchange runs under
// the caller's context (remote.WithContext), so cancelling a pull cancels
// it too.
func (k keychain) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	registry := target.RegistryStr()
	if !k.h.Serves(registry) {
		return authn.Anonymous, nil
	}
	username, secret, err := k.h.GetContext(ctx, registry)
	if err != nil {
		return nil, err
	}
	return &authn.Basic{Username: username, Password: secret}, nil
}
