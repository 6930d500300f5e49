// Package creds turns a registry host and the workload's ambient OIDC token
// into short-lived registry credentials: config, ambient token sources, the
// token cache and the exchange. Get serves docker's credential-helper
// protocol and go-containerregistry (through pkg/creds/ggcr);
// PullCredential serves the kubelet plugin. Both take the same path through
// the sources, the cache and the exchange.
package creds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/internal/tlsroots"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// Username is what the registry expects beside a token. Not "<token>":
// that makes docker and go-containerregistry attempt an OAuth2 refresh.
const Username = "_token"

// Helper answers credential requests for the configured registries. It
// is safe for concurrent use.
type Helper struct {
	cfg       Config
	regs      registries
	exchanger *exchange.Client
	client    *http.Client
	now       func() time.Time
	logf      func(string, ...any)
	userAgent string
}

// Option customises a Helper.
type Option func(*Helper)

// WithClock sets the time source used for expiry decisions.
func WithClock(now func() time.Time) Option { return func(h *Helper) { h.now = now } }

// WithLogger sets where debug messages go; by default they go to stderr
// when cfg.Debug is set, and nowhere otherwise.
func WithLogger(logf func(format string, args ...any)) Option {
	return func(h *Helper) { h.logf = logf }
}

// WithVersion sets the version sent in the User-Agent.
func WithVersion(v string) Option {
	return func(h *Helper) { h.userAgent = appName + "/" + v }
}

// New returns a Helper for cfg. It fails only on configuration that can
// never work, such as an http:// issuer that is not loopback.
func New(cfg Config, opts ...Option) (*Helper, error) {
	h := &Helper{
		cfg:       cfg,
		client:    &http.Client{Transport: tlsroots.Transport()},
		now:       time.Now,
		logf:      func(string, ...any) {},
		userAgent: appName + "/dev",
	}
	if cfg.Debug {
		h.logf = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, appName+": "+format+"\n", args...)
		}
	}
	if h.cfg.Timeout <= 0 {
		h.cfg.Timeout = DefaultTimeout
	}
	regs, err := parseRegistries(cfg.Registries...)
	if err != nil {
		return nil, err
	}
	if len(regs) == 0 {
		return nil, errors.New("no registry to serve; set CHAINGUARD_REGISTRY, or unset it for cgr.dev")
	}
	h.regs = regs
	for _, o := range opts {
		o(h)
	}
	c, err := exchange.New(cfg.Issuer, exchange.WithUserAgent(h.userAgent))
	if err != nil {
		return nil, fmt.Errorf("CHAINGUARD_ISSUER: %w", err)
	}
	// The client's spelling: "https://x" and "https://x/" are one STS, and
	// one cache key.
	h.exchanger, h.cfg.Issuer = c, c.Issuer()
	return h, nil
}

// Serves reports whether serverURL names a registry this helper answers for.
func (h *Helper) Serves(serverURL string) bool { return h.regs.serves(NormalizeHost(serverURL)) }

// Get returns the username and registry token for serverURL. It is the one
// method docker-credential-helpers' credentials.Helper and
// go-containerregistry's authn.Helper both need.
func (h *Helper) Get(serverURL string) (string, string, error) {
	return h.GetContext(context.Background(), serverURL)
}

// GetContext is Get under the caller's context, and within the configured
// timeout whatever the caller's deadline: the timeout starts when the
// cache has no token (see token).
func (h *Helper) GetContext(ctx context.Context, serverURL string) (string, string, error) {
	if !h.Serves(serverURL) {
		return "", "", errNotFound
	}
	tok, err := h.get(ctx, h.cfg.Identity)
	if err != nil {
		h.recordFailure("get", NormalizeHost(serverURL), err)
		return "", "", err
	}
	return Username, tok.Raw, nil
}

// get returns a registry token for identity from the ambient token, the way
// GetContext and the kubelet's node mode both need it.
func (h *Helper) get(ctx context.Context, identity string) (exchange.Token, error) {
	src, err := firstSource(ambientSources(h.cfg, h.client))
	if err != nil {
		return exchange.Token{}, err
	}
	ambient := func(ctx context.Context) (AmbientToken, error) {
		amb, err := src.Provide(ctx)
		if err != nil {
			return AmbientToken{}, err
		}
		return h.checked(amb)
	}
	var tok exchange.Token
	if k, ok := src.(cacheKeyer); ok {
		// The source's token costs a network call, so the source keys the
		// cache instead: a hit needs no call.
		tok, err = h.token(ctx, h.cacheKey(identity, k.cacheKeyParts()...), identity, ambient)
	} else {
		var amb AmbientToken
		if amb, err = ambient(ctx); err == nil {
			tok, err = h.tokenFor(ctx, amb, identity)
		}
	}
	return tok, err
}

// cacheKeyer is a source that can name its caller without fetching the
// token (see actionsSource.cacheKeyParts).
type cacheKeyer interface{ cacheKeyParts() []string }

// ambientFrom parses and checks an ambient token the caller already has,
// such as the pod's service-account token the kubelet passes. source names
// it in messages.
func (h *Helper) ambientFrom(raw, source string) (AmbientToken, error) {
	amb, err := ParseAmbientToken(raw, source)
	if err != nil {
		return AmbientToken{}, err
	}
	return h.checked(amb)
}

func (h *Helper) checked(amb AmbientToken) (AmbientToken, error) {
	if err := amb.Check(h.now()); err != nil {
		return AmbientToken{}, err
	}
	h.logf("ambient %s", amb)
	return amb, nil
}

// tokenFor returns a registry token for identity, exchanging amb for it
// unless the cache has one with more than Margin of life left. Concurrent
// callers, in this process or others, share one exchange.
func (h *Helper) tokenFor(ctx context.Context, amb AmbientToken, identity string) (exchange.Token, error) {
	return h.token(ctx, h.cacheKey(identity, amb.Issuer, amb.Subject), identity, func(context.Context) (AmbientToken, error) { return amb, nil })
}

// cacheKey names the cache entry for identity and the caller: tokens from
// different STSs, for different identities, audiences or callers never mix.
func (h *Helper) cacheKey(identity string, caller ...string) string {
	return cacheKey(append([]string{h.cfg.Issuer, identity, h.cfg.Audience}, caller...)...)
}

// token is tokenFor for a key known before the ambient token: ambient is
// called only when the cache has no entry, after the lock is taken.
func (h *Helper) token(ctx context.Context, key, identity string, ambient func(context.Context) (AmbientToken, error)) (exchange.Token, error) {
	c := h.openCache()
	opened := c // c is the null cache below if the lock cannot be had
	defer func() { _ = opened.close() }()
	if tok, ok := c.load(key, h.now()); ok {
		h.logf("cache hit: token valid until %s", tok.Expiry) // formatted only when logging
		return tok, nil
	}
	// The deadline starts at the miss: nothing before it can wait (files
	// are opened without blocking), and the timer it arms cost a hit about
	// 1.5% together with the poller (docs/benchmarks.md).
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	since := h.now()
	// A holder that is frozen or hung must not take this call down with
	// it: wait for part of the deadline only, then exchange without the
	// cache. Better an extra exchange than a failed pull.
	var waited exchange.Token
	unlock, err := c.lockWait(ctx, key, lockBudget(ctx), func() (ok bool) {
		waited, ok = c.load(key, h.now())
		return ok
	})
	if errors.Is(err, errReady) {
		h.logf("cache hit while waiting for another exchange")
		return waited, nil
	}
	if err != nil {
		h.logf("cache: no lock (%v); exchanging without the cache", err)
		c = noCache{}
	} else {
		defer unlock()
		// Whoever held the lock may have just written the entry...
		if tok, ok := c.load(key, h.now()); ok {
			h.logf("cache hit after waiting for another exchange")
			return tok, nil
		}
		// ...or failed while we waited. Its answer is as fresh as ours
		// would be, and under a failing STS fifty callers must not each
		// spend their deadline retrying one after another.
		if msg, ok := c.loadFailure(key, since, h.now()); ok {
			return exchange.Token{}, sharedFailure(msg)
		}
	}

	tok, err := h.exchange(ctx, identity, ambient)
	if err != nil {
		// Not when our own deadline ran out: that is not the STS's answer.
		if ctx.Err() == nil {
			c.keepFailure(key, err.Error(), h.now())
		}
		return exchange.Token{}, err
	}
	c.keep(key, tok, h.now())
	return tok, nil
}

// exchange gets the ambient token and trades it at the STS. The issued
// token's life is trusted for at most maxTrustedLifetime: a token that
// claims to live for years is neither cached nor handed to the kubelet for
// years.
func (h *Helper) exchange(ctx context.Context, identity string, ambient func(context.Context) (AmbientToken, error)) (exchange.Token, error) {
	amb, err := ambient(ctx)
	if err != nil {
		return exchange.Token{}, err
	}
	h.logf("exchanging at %s for identity %s, audience %s", h.cfg.Issuer, logsafe.Describe(identity), logsafe.Describe(h.cfg.Audience))
	tok, err := h.exchanger.Exchange(ctx, amb.Raw(), exchange.Request{
		Audience: []string{h.cfg.Audience},
		Identity: identity,
	})
	if err != nil {
		return exchange.Token{}, redact(h.explain(ctx, err, amb, identity), amb.Raw())
	}
	now := h.now()
	if err := checkIssued(tok, now); err != nil {
		return exchange.Token{}, err
	}
	if limit := now.Add(maxTrustedLifetime); tok.Expiry.After(limit) {
		h.logf("the issued token claims to live until %s; trusting it for %s", tok.Expiry.UTC().Format(time.RFC3339), maxTrustedLifetime)
		tok.Expiry = limit
	}
	return tok, nil
}

// tokenCache is the token cache as token uses it: the on-disk cache, or
// noCache when it is off or unusable. A cache that fails costs an
// exchange, never a pull: keep and keepFailure log what goes wrong.
type tokenCache interface {
	load(key string, now time.Time) (exchange.Token, bool)
	lockWait(ctx context.Context, key string, maxWait time.Duration, ready func() bool) (unlock func(), err error)
	loadFailure(key string, since, now time.Time) (string, bool)
	keep(key string, tok exchange.Token, now time.Time)
	keepFailure(key, msg string, at time.Time)
	appendFailure(f Failure) error
	close() error
}

// openCache returns the cache, or noCache when it is off or unusable: an
// unwritable cache folder costs an exchange per call, never a failure.
func (h *Helper) openCache() tokenCache {
	if h.cfg.NoCache || h.cfg.CacheDir == "" {
		return noCache{}
	}
	c, err := openCache(h.cfg.CacheDir, h.logf)
	if err != nil {
		h.logf("cache: disabled: %v", err)
		return noCache{}
	}
	return c
}
