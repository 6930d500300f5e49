package sandbox

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// clockSkew is the leeway allowed on exp and nbf. Everything runs on one
// machine, so it only needs to absorb the one-second rounding of JWT times.
const clockSkew = 5 * time.Second

// STS is a Chainguard-style security token service. It exchanges an ambient
// OIDC token, verified for real against its issuer's JWKS, for a token of an
// assumable identity, and can be told to misbehave (see Fault).
type STS struct {
	srv       *httptest.Server
	key       *keyPair
	jwks      *jwksCache
	closing   chan struct{} // closed by Close, so injected delays end promptly
	closeOnce sync.Once

	mu         sync.Mutex
	identities []namedIdentity // registration order: without an identity parameter, the first match wins
	lifetime   time.Duration
	faults     []Fault
	requests   int
	exchanges  int
	issued     []Issued
	last       RecordedRequest
}

// Identity is an assumable identity: a token whose iss equals Issuer and
// whose sub fully matches SubjectPattern (a Go regexp, implicitly anchored at
// both ends) may assume it.
type Identity struct {
	Issuer         string
	SubjectPattern string
	// IssuerKeys, when set, is a JWKS document: the issuer's public keys,
	// given once when the identity is made, as for a cluster whose issuer
	// is not reachable from the internet (`chainctl iam identities create
	// --issuer-keys="$(kubectl get --raw /openid/v1/jwks)"`). Tokens for
	// this identity are then verified against these keys only; the issuer's
	// discovery document is never fetched. A token signed by a key not in
	// the set (the cluster rotated its signing key) is refused with a
	// message saying the identity's issuer keys must be updated.
	IssuerKeys string
}

type namedIdentity struct {
	id      string
	ident   Identity
	subject *regexp.Regexp
	keys    map[string]*rsa.PublicKey // kid -> key, from IssuerKeys; nil without static keys
}

// Issued records one successful exchange: which identity was assumed, by
// the token of which issuer and subject. It holds no token.
type Issued struct {
	Identity string
	Issuer   string
	Subject  string
}

func (n namedIdentity) matches(iss, sub string) bool {
	return n.ident.Issuer == iss && n.subject.MatchString(sub)
}

// RecordedRequest describes one /sts/exchange request, so tests can check
// what a client sent. The bearer token itself is never kept.
type RecordedRequest struct {
	Method      string
	ContentType string
	UserAgent   string
	Accept      string     // the Accept header
	Form        url.Values // query string and form body merged, as the server reads them
	PostForm    url.Values // the form body alone (empty for GET or non-form bodies)
	Body        string     // the form body exactly as received, to check its encoding (empty for GET or non-form bodies)
	Bearer      bool       // whether Authorization carried a non-empty Bearer credential
}

// Fault is one injected answer. Faults are consumed first in, first out,
// one per request, before normal handling.
type Fault struct {
	Status     int           // HTTP status to answer; 0 = only apply Delay (and RetryAfter), then handle normally
	Code       int           // gRPC code in the grpc-gateway body; 0 = derived from Status
	Message    string        // status message; empty = the HTTP status text
	RetryAfter string        // Retry-After header value, if set
	Delay      time.Duration // sleep before answering; ends early if the client goes away
	Body       string        // raw body sent with Status instead of the JSON (200 + garbage = a broken 200); ignored when Status is 0

	// Header holds extra response headers, set before anything is written:
	// Location for a 3xx, a Content-Type override for Body, anything a proxy
	// might add. RetryAfter, if set, wins over a Retry-After here. With
	// Status 0 the headers go on the normal answer, whose Content-Type
	// replaces one set here.
	Header map[string]string
	// NoBody answers Status with an empty body (and Body is ignored), as
	// load balancers and proxies often do; ignored when Status is 0.
	NoBody bool
}

// NewSTS starts an STS on 127.0.0.1 with its own signing key and no
// identities; add them with AddIdentity.
func NewSTS() (*STS, error) {
	k, err := newKeyPair()
	if err != nil {
		return nil, err
	}
	s := &STS{
		key:      k,
		jwks:     newJWKSCache(),
		closing:  make(chan struct{}),
		lifetime: time.Hour,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/sts/exchange", s.serveExchange)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.serveDiscovery)
	mux.HandleFunc("GET /.well-known/keys", s.serveJWKS)
	// Start only after every field is set: handlers read them.
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Start()
	return s, nil
}

// URL is the STS base URL (what CHAINGUARD_ISSUER points at) and the iss of
// the tokens it issues.
func (s *STS) URL() string { return s.srv.URL }

// Close stops the server, cutting short any injected delay.
func (s *STS) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.srv.Close()
}

// AddIdentity registers (or replaces) the assumable identity id. It panics
// if SubjectPattern is not a valid regexp, like regexp.MustCompile, or if
// IssuerKeys is set but holds no usable RSA key: that is a mistake in the
// test, not a condition to handle.
func (s *STS) AddIdentity(id string, ident Identity) {
	n := namedIdentity{id: id, ident: ident, subject: regexp.MustCompile(`^(?:` + ident.SubjectPattern + `)$`)}
	if ident.IssuerKeys != "" {
		keys, err := ParseIssuerKeys(ident.IssuerKeys)
		if err != nil {
			panic(fmt.Sprintf("sandbox: identity %s: %v", id, err))
		}
		n.keys = keys
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.identities {
		if s.identities[i].id == id {
			s.identities[i] = n
			return
		}
	}
	s.identities = append(s.identities, n)
}

// SetTokenLifetime sets the lifetime of tokens issued from now on (default
// one hour). Tests set it under five minutes to force clients to re-exchange;
// a negative d issues tokens that are already expired.
func (s *STS) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// Requests is the number of /sts/exchange requests received, faults included.
func (s *STS) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Exchanges is the number of successful exchanges (tokens issued).
func (s *STS) Exchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exchanges
}

// Issued lists the successful exchanges so far, oldest first: which
// identity each token was issued for, and to whom.
func (s *STS) Issued() []Issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.issued)
}

// LastRequest describes the most recent /sts/exchange request (empty
// before any). It is a copy; changing it changes nothing in the STS.
func (s *STS) LastRequest() RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.last
	r.Form, r.PostForm = cloneValues(r.Form), cloneValues(r.PostForm)
	return r
}

// InjectFaults queues faults; each later request consumes one, in order.
func (s *STS) InjectFaults(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// stsClaims is the claim layout of an issued token: "act" records who
// assumed the identity, as in RFC 8693 token exchange.
type stsClaims struct {
	jwt.RegisteredClaims
	Act actor `json:"act"`
}

type actor struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
}

// VerifyToken verifies a token this STS issued: signature, iss, exp and that
// aud contains audience. It returns the subject, which is the identity id.
func (s *STS) VerifyToken(raw, audience string) (subject string, err error) {
	var c stsClaims
	_, err = jwt.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != s.key.kid {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		return &s.key.priv.PublicKey, nil
	},
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(s.URL()),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
	)
	if err != nil {
		return "", fmt.Errorf("STS token rejected: %w", err)
	}
	return c.Subject, nil
}

func (s *STS) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, discovery{
		Issuer:        s.URL(),
		JWKSURI:       s.URL() + "/.well-known/keys",
		ResponseTypes: []string{"id_token"},
		SubjectTypes:  []string{"public"},
		SigningAlgs:   []string{"RS256"},
	})
}

func (s *STS) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jwkSet{Keys: []jwk{s.key.jwk()}})
}

// exchangeResponse is the STS's success body.
type exchangeResponse struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refresh_token"`
	Expiry       string `json:"expiry"`
}

// rpcError is a failed exchange, answered in grpc-gateway's error shape.
type rpcError struct {
	status  int
	message string
}

func (e *rpcError) Error() string { return e.message }

func unauthenticated(format string, a ...any) *rpcError {
	return &rpcError{http.StatusUnauthorized, fmt.Sprintf(format, a...)}
}

func (s *STS) serveExchange(w http.ResponseWriter, r *http.Request) {
	limited := http.MaxBytesReader(w, r.Body, 64<<10)
	var body strings.Builder // what ParseForm reads of the body, for RecordedRequest.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(limited, &body), limited}
	formErr := r.ParseForm()
	_, hasBearer := bearerToken(r)
	f, faulty := s.record(RecordedRequest{
		Method:      r.Method,
		ContentType: r.Header.Get("Content-Type"),
		UserAgent:   r.UserAgent(),
		Accept:      r.Header.Get("Accept"),
		Form:        cloneValues(r.Form),
		PostForm:    cloneValues(r.PostForm),
		Body:        body.String(),
		Bearer:      hasBearer,
	})
	if faulty && !s.applyFault(w, r, f) {
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		writeRPCError(w, http.StatusMethodNotAllowed, 12, "method "+r.Method+" not allowed; use POST")
		return
	}
	if formErr != nil {
		writeRPCError(w, http.StatusBadRequest, 0, "malformed request parameters: "+formErr.Error())
		return
	}
	resp, err := s.exchange(r.Context(), r)
	if err != nil {
		writeRPCError(w, err.status, 0, err.message)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// record counts the request, remembers it, and pops the next fault.
func (s *STS) record(rec RecordedRequest) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.last = rec
	if len(s.faults) == 0 {
		return Fault{}, false
	}
	f := s.faults[0]
	s.faults = s.faults[1:]
	return f, true
}

// applyFault plays f and reports whether normal handling should follow.
func (s *STS) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	for k, v := range f.Header {
		w.Header().Set(k, v)
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return false
		case <-s.closing:
			return false
		}
	}
	if f.Status == 0 {
		return true
	}
	if f.NoBody {
		w.WriteHeader(f.Status)
		return false
	}
	if f.Body != "" {
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, f.Body)
		return false
	}
	msg := f.Message
	if msg == "" {
		msg = http.StatusText(f.Status)
	}
	writeRPCError(w, f.Status, f.Code, msg)
	return false
}

// exchange is the real service's logic: authenticate the ambient token,
// pick the identity, issue a token.
func (s *STS) exchange(ctx context.Context, r *http.Request) (*exchangeResponse, *rpcError) {
	raw, ok := bearerToken(r)
	if !ok {
		return nil, unauthenticated("missing bearer token: send the OIDC token as \"Authorization: Bearer <token>\"")
	}
	auds := slices.DeleteFunc(slices.Clone(r.Form["aud"]), func(a string) bool { return a == "" })
	if len(auds) == 0 {
		return nil, &rpcError{http.StatusBadRequest, "aud is required: the audience of the requested token, e.g. aud=" + RegistryAudience}
	}
	id := r.Form.Get("identity")
	iss, sub, kid, verified, err := s.authenticate(ctx, raw, id)
	if err != nil {
		return nil, err
	}

	// An untrusted issuer was not verified (fetching its keys would let
	// anyone make the STS fetch any URL); no identity can match it below.
	chosen, err := s.chooseIdentity(id, iss, sub)
	if err != nil {
		return nil, err
	}
	if !verified { // only if an identity for iss appeared mid-request
		return nil, unauthenticated("issuer %q is not trusted; retry", iss)
	}
	// The token was verified by some key trusted for iss; an identity with
	// static keys accepts only its own.
	if err := s.checkStaticKey(chosen, iss, kid); err != nil {
		return nil, err
	}

	s.mu.Lock()
	lifetime := s.lifetime
	s.mu.Unlock()
	now := time.Now()
	claims := stsClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.URL(),
			Subject:   chosen,
			Audience:  auds,
			ExpiresAt: jwt.NewNumericDate(now.Add(lifetime)),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ID:        newUUID(),
		},
		Act: actor{Issuer: iss, Subject: sub},
	}
	tok, signErr := s.key.sign(claims, nil)
	if signErr != nil {
		return nil, &rpcError{http.StatusInternalServerError, "signing token: " + signErr.Error()}
	}
	s.mu.Lock()
	s.exchanges++
	s.issued = append(s.issued, Issued{Identity: chosen, Issuer: iss, Subject: sub})
	s.mu.Unlock()
	return &exchangeResponse{Token: tok, Expiry: claims.ExpiresAt.UTC().Format(time.RFC3339)}, nil
}

// chooseIdentity applies the identity rules: a named identity must exist and
// match; without a name, the first matching identity is used.
func (s *STS) chooseIdentity(id, iss, sub string) (string, *rpcError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != "" {
		for _, n := range s.identities {
			if n.id != id {
				continue
			}
			if !n.matches(iss, sub) {
				return "", &rpcError{http.StatusForbidden, fmt.Sprintf(
					"token with issuer %q and subject %q may not assume identity %q", iss, sub, id)}
			}
			return id, nil
		}
		return "", &rpcError{http.StatusNotFound, fmt.Sprintf("identity %s not found", id)}
	}
	for _, n := range s.identities {
		if n.matches(iss, sub) {
			return n.id, nil
		}
	}
	return "", &rpcError{http.StatusForbidden, fmt.Sprintf(
		"no identity matches token with issuer %q and subject %q", iss, sub)}
}

func (s *STS) trustsIssuer(iss string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.identities, func(n namedIdentity) bool { return n.ident.Issuer == iss })
}

// staticKeyError is a token signed by a key that none of the static issuer
// keys registered for its issuer holds: usually the cluster rotated its
// service-account signing key after the identity was made.
type staticKeyError struct {
	iss, kid   string
	identities []string
}

func (e *staticKeyError) Error() string {
	return fmt.Sprintf("key id %q not found in the issuer keys of identity %s (issuer %q): "+
		"the issuer's signing keys have changed since the identity was made; update the identity's issuer keys "+
		"with the issuer's current JWKS (for a cluster: kubectl get --raw /openid/v1/jwks)",
		e.kid, strings.Join(e.identities, ", "), e.iss)
}

// issuerKey finds the key kid for iss: among the static keys of iss's
// identities first; from iss's discovery document only if some identity of
// iss has no static keys.
func (s *STS) issuerKey(ctx context.Context, iss, kid string) (*rsa.PublicKey, error) {
	s.mu.Lock()
	var static []string
	discovery := false
	for _, n := range s.identities {
		if n.ident.Issuer != iss {
			continue
		}
		if n.keys == nil {
			discovery = true
			continue
		}
		if k := n.keys[kid]; k != nil {
			s.mu.Unlock()
			return k, nil
		}
		static = append(static, n.id)
	}
	s.mu.Unlock()
	if !discovery {
		return nil, &staticKeyError{iss: iss, kid: kid, identities: static}
	}
	return s.jwks.key(ctx, iss, kid)
}

// checkStaticKey refuses a token for an identity with static issuer keys
// when kid, the key that verified it, is not among that identity's keys (it
// may be another identity's key for the same issuer).
func (s *STS) checkStaticKey(id, iss, kid string) *rpcError {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.identities {
		if n.id == id && n.keys != nil && n.keys[kid] == nil {
			return unauthenticated("unable to verify token: %s", (&staticKeyError{iss: iss, kid: kid, identities: []string{id}}).Error())
		}
	}
	return nil
}

// authenticate verifies the ambient token when its issuer is trusted, and
// returns its iss and sub either way (for the identity check and messages),
// and the kid of the key that verified it. id, the requested identity (may
// be empty), only narrows the message when no static key matches.
func (s *STS) authenticate(ctx context.Context, raw, id string) (iss, sub, kid string, verified bool, _ *rpcError) {
	var unverified jwt.RegisteredClaims
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &unverified)
	if err != nil {
		return "", "", "", false, unauthenticated("the bearer token is not a valid JWT")
	}
	iss, sub = unverified.Issuer, unverified.Subject
	kid, _ = tok.Header["kid"].(string)
	if iss == "" {
		return "", "", "", false, unauthenticated("the token has no iss claim")
	}
	if !s.trustsIssuer(iss) {
		return iss, sub, kid, false, nil
	}

	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return s.issuerKey(ctx, iss, kid)
	},
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
	)
	if err != nil {
		if ske := (*staticKeyError)(nil); errors.As(err, &ske) {
			if slices.Contains(ske.identities, id) {
				ske.identities = []string{id}
			}
			return iss, sub, kid, false, unauthenticated("unable to verify token: %s", ske.Error())
		}
		return iss, sub, kid, false, unauthenticated("unable to verify token: %s", describeJWTError(err, &unverified))
	}
	if !slices.Contains(claims.Audience, EnforceAudience) {
		return iss, sub, kid, false, unauthenticated(
			"invalid token audience %q: the token must be issued for audience %q", []string(claims.Audience), EnforceAudience)
	}
	return iss, sub, kid, true, nil
}

// ParseIssuerKeys reads a JWKS document, as a Kubernetes API server serves
// it at /openid/v1/jwks, into its RSA keys by kid. Keys of other types are
// skipped (this STS verifies RS256 only); a document without any RSA key,
// or a key without a kid, is an error.
func ParseIssuerKeys(jwks string) (map[string]*rsa.PublicKey, error) {
	var set jwkSet
	if err := json.Unmarshal([]byte(jwks), &set); err != nil {
		return nil, fmt.Errorf("issuer keys are not a JWKS document: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, j := range set.Keys {
		if j.Kty != "RSA" {
			continue
		}
		if j.Kid == "" {
			return nil, errors.New("issuer keys: an RSA key has no kid")
		}
		pub, err := j.publicKey()
		if err != nil {
			return nil, fmt.Errorf("issuer keys: %w", err)
		}
		keys[j.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("issuer keys hold no RSA key")
	}
	return keys, nil
}

// describeJWTError turns a jwt error into a message a person can act on.
// jwt's errors never contain the token, so including them is safe.
func describeJWTError(err error, c *jwt.RegisteredClaims) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired) && c.ExpiresAt != nil:
		return "token expired at " + c.ExpiresAt.UTC().Format(time.RFC3339)
	case errors.Is(err, jwt.ErrTokenNotValidYet) && c.NotBefore != nil:
		return "token not valid before " + c.NotBefore.UTC().Format(time.RFC3339)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token has no exp claim"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "token signature is invalid"
	default:
		return err.Error()
	}
}

// grpcStatus is grpc-gateway's error body.
type grpcStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []any  `json:"details"`
}

// writeRPCError answers in grpc-gateway's shape; code 0 derives the gRPC
// code from the HTTP status, as grpc-gateway's mapping would have produced it.
func writeRPCError(w http.ResponseWriter, status, code int, message string) {
	if code == 0 {
		code = grpcCode(status)
	}
	writeJSON(w, status, grpcStatus{Code: code, Message: message, Details: []any{}})
}

// grpcCode inverts grpc-gateway's HTTPStatusFromCode.
func grpcCode(status int) int {
	switch status {
	case http.StatusOK:
		return 0 // OK
	case 499:
		return 1 // Canceled
	case http.StatusBadRequest:
		return 3 // InvalidArgument
	case http.StatusGatewayTimeout:
		return 4 // DeadlineExceeded
	case http.StatusNotFound:
		return 5 // NotFound
	case http.StatusConflict:
		return 6 // AlreadyExists
	case http.StatusForbidden:
		return 7 // PermissionDenied
	case http.StatusTooManyRequests:
		return 8 // ResourceExhausted
	case http.StatusNotImplemented, http.StatusMethodNotAllowed:
		return 12 // Unimplemented
	case http.StatusInternalServerError:
		return 13 // Internal
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return 14 // Unavailable
	case http.StatusUnauthorized:
		return 16 // Unauthenticated
	default:
		return 2 // Unknown
	}
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return url.Values{}
	}
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = slices.Clone(vs)
	}
	return c
}

// jwksCache fetches and caches issuers' signing keys, like an OIDC verifier:
// discovery first, then jwks_uri; an unknown kid triggers a refetch, which
// is how a verifier follows key rotation.
type jwksCache struct {
	client *http.Client

	mu   sync.Mutex
	keys map[string]map[string]*rsa.PublicKey // issuer -> kid -> key
}

func newJWKSCache() *jwksCache {
	return &jwksCache{
		client: &http.Client{
			Timeout: 10 * time.Second,
			// A verifier must not be bounced elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		keys: map[string]map[string]*rsa.PublicKey{},
	}
}

// key returns iss's key kid, fetching the JWKS if it is not cached.
func (c *jwksCache) key(ctx context.Context, iss, kid string) (*rsa.PublicKey, error) {
	c.mu.Lock()
	k := c.keys[iss][kid]
	c.mu.Unlock()
	if k != nil {
		return k, nil
	}
	// Concurrent misses may fetch twice; that is harmless, and simpler
	// than holding a lock across the network.
	keys, err := c.fetch(ctx, iss)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.keys[iss] = keys
	c.mu.Unlock()
	if k = keys[kid]; k == nil {
		return nil, fmt.Errorf("issuer %s has no key with kid %q", iss, kid)
	}
	return k, nil
}

func (c *jwksCache) fetch(ctx context.Context, iss string) (map[string]*rsa.PublicKey, error) {
	var d discovery
	if err := c.getJSON(ctx, strings.TrimSuffix(iss, "/")+"/.well-known/openid-configuration", &d); err != nil {
		return nil, err
	}
	if d.Issuer != iss {
		return nil, fmt.Errorf("discovery document of %s names issuer %q", iss, d.Issuer)
	}
	var set jwkSet
	if err := c.getJSON(ctx, d.JWKSURI, &set); err != nil {
		return nil, err
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, j := range set.Keys {
		if j.Kty != "RSA" {
			continue
		}
		pub, err := j.publicKey()
		if err != nil {
			return nil, fmt.Errorf("JWKS of %s: %w", iss, err)
		}
		keys[j.Kid] = pub
	}
	return keys, nil
}

func (c *jwksCache) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", u, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: status %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("decoding %s: %w", u, err)
	}
	return nil
}
