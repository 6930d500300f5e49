package sandbox

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is a Kubernetes-style OIDC issuer, like a cluster's service-account
// token issuer: it publishes discovery and a JWKS, and mints projected
// service-account tokens. The same server also plays GitHub Actions' OIDC
// token endpoint, so CI flows can be tested without GitHub.
type Issuer struct {
	srv          *httptest.Server
	actionsToken string
	salt         string // keeps derived uids distinct between issuers

	mu      sync.Mutex
	current *keyPair
	keys    []*keyPair // every key used so far; all stay in the JWKS, as during a real rotation
}

// NewIssuer starts an issuer on 127.0.0.1 with a fresh RSA-2048 key.
func NewIssuer() (*Issuer, error) {
	k, err := newKeyPair()
	if err != nil {
		return nil, err
	}
	i := &Issuer{
		actionsToken: randomHex(32),
		salt:         randomHex(16),
		current:      k,
		keys:         []*keyPair{k},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", i.serveDiscovery)
	mux.HandleFunc("GET /openid/v1/jwks", i.serveJWKS)
	mux.HandleFunc("GET /actions/token", i.serveActionsToken)
	// Start only after every field is set: handlers read them.
	i.srv = httptest.NewUnstartedServer(mux)
	i.srv.Start()
	return i, nil
}

// URL is the issuer's base URL, e.g. http://127.0.0.1:PORT. It is also the
// iss claim of every token it mints.
func (i *Issuer) URL() string { return i.srv.URL }

// Close stops the server.
func (i *Issuer) Close() { i.srv.Close() }

// RotateKey starts signing with a new key. The old keys stay in the JWKS, so
// tokens already minted still verify; verifiers that cached the JWKS must
// refetch it when they meet the new kid.
func (i *Issuer) RotateKey() error {
	k, err := newKeyPair()
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.current = k
	i.keys = append(i.keys, k)
	return nil
}

func (i *Issuer) signingKey() *keyPair {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.current
}

// discovery is the subset of OpenID provider metadata that verifiers use;
// the field set matches what kube-apiserver serves.
type discovery struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	ResponseTypes []string `json:"response_types_supported"`
	SubjectTypes  []string `json:"subject_types_supported"`
	SigningAlgs   []string `json:"id_token_signing_alg_values_supported"`
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, discovery{
		Issuer:        i.URL(),
		JWKSURI:       i.URL() + "/openid/v1/jwks",
		ResponseTypes: []string{"id_token"},
		SubjectTypes:  []string{"public"},
		SigningAlgs:   []string{"RS256"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.mu.Lock()
	set := jwkSet{Keys: make([]jwk, 0, len(i.keys))}
	for _, k := range i.keys {
		set.Keys = append(set.Keys, k.jwk())
	}
	i.mu.Unlock()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	writeJSONBody(w, http.StatusOK, set)
}

// TokenOption adjusts a minted token.
type TokenOption func(*tokenOptions)

type tokenOptions struct {
	audience []string
	lifetime time.Duration
	issuedAt time.Time
}

// WithAudience sets the aud claim (default [EnforceAudience]).
func WithAudience(aud ...string) TokenOption {
	return func(o *tokenOptions) { o.audience = aud }
}

// WithLifetime sets exp = issuedAt + d (default one hour, the kubelet's
// default expirationSeconds for projected tokens).
func WithLifetime(d time.Duration) TokenOption {
	return func(o *tokenOptions) { o.lifetime = d }
}

// WithIssuedAt sets iat and nbf; a time far enough in the past mints a token
// that is already expired.
func WithIssuedAt(t time.Time) TokenOption {
	return func(o *tokenOptions) { o.issuedAt = t }
}

// serviceAccountClaims is the claim layout of a Kubernetes projected
// service-account token.
type serviceAccountClaims struct {
	jwt.RegisteredClaims
	Kubernetes kubernetesClaims `json:"kubernetes.io"`
}

type kubernetesClaims struct {
	Namespace      string     `json:"namespace"`
	Node           *objectRef `json:"node,omitempty"`
	Pod            *objectRef `json:"pod,omitempty"`
	ServiceAccount objectRef  `json:"serviceaccount"`
}

type objectRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// MintServiceAccountToken mints a projected service-account token for
// NS/SA with the real claim layout: iss, sub "system:serviceaccount:NS:SA",
// aud, exp, iat, nbf, jti and "kubernetes.io" (namespace, serviceaccount,
// pod and node, each with name and uid). The service account's and pod's
// uids are stable per issuer, as they would be for one running pod.
func (i *Issuer) MintServiceAccountToken(namespace, serviceAccount string, opts ...TokenOption) (string, error) {
	if namespace == "" || serviceAccount == "" || strings.Contains(namespace+serviceAccount, ":") {
		return "", errors.New("sandbox: namespace and service account must be non-empty and contain no ':'")
	}
	o := tokenOptions{audience: []string{EnforceAudience}, lifetime: time.Hour, issuedAt: time.Now()}
	for _, opt := range opts {
		opt(&o)
	}
	podSuffix := strings.ReplaceAll(stableUUID(i.salt, "pod-name", namespace, serviceAccount), "-", "")
	claims := serviceAccountClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.URL(),
			Subject:   "system:serviceaccount:" + namespace + ":" + serviceAccount,
			Audience:  o.audience,
			ExpiresAt: jwt.NewNumericDate(o.issuedAt.Add(o.lifetime)),
			IssuedAt:  jwt.NewNumericDate(o.issuedAt),
			NotBefore: jwt.NewNumericDate(o.issuedAt),
			ID:        newUUID(),
		},
		Kubernetes: kubernetesClaims{
			Namespace: namespace,
			Node:      &objectRef{Name: "sandbox-node-0", UID: stableUUID(i.salt, "node")},
			Pod: &objectRef{
				Name: serviceAccount + "-" + podSuffix[:10] + "-" + podSuffix[10:15],
				UID:  stableUUID(i.salt, "pod", namespace, serviceAccount),
			},
			ServiceAccount: objectRef{Name: serviceAccount, UID: stableUUID(i.salt, "sa", namespace, serviceAccount)},
		},
	}
	// kube-apiserver's headers carry only alg and kid.
	return i.signingKey().sign(claims, map[string]any{"typ": nil})
}

// Subject and default audience of GitHub Actions tokens minted by the
// sandbox: a push to main of octo-org/octo-repo.
const (
	actionsSubject = "repo:octo-org/octo-repo:ref:refs/heads/main"
	actionsDefault = "https://github.com/octo-org" // GitHub's aud when no audience is requested
)

// ActionsRequestURL is the value GitHub puts in ACTIONS_ID_TOKEN_REQUEST_URL.
// Like GitHub's, it already has a query string, so clients append
// "&audience=...".
func (i *Issuer) ActionsRequestURL() string { return i.URL() + "/actions/token?api-version=2.0" }

// ActionsRequestToken is the value GitHub puts in
// ACTIONS_ID_TOKEN_REQUEST_TOKEN: the bearer the token endpoint requires.
func (i *Issuer) ActionsRequestToken() string { return i.actionsToken }

// actionsClaims is the claim layout of a GitHub Actions OIDC token.
type actionsClaims struct {
	jwt.RegisteredClaims
	// GitHub sends a single audience as a plain string, not an array;
	// clients must accept both, so the sandbox does it the same way.
	Audience          string `json:"aud"`
	Ref               string `json:"ref"`
	RefType           string `json:"ref_type"`
	SHA               string `json:"sha"`
	Repository        string `json:"repository"`
	RepositoryID      string `json:"repository_id"`
	RepositoryOwner   string `json:"repository_owner"`
	RepositoryOwnerID string `json:"repository_owner_id"`
	RunID             string `json:"run_id"`
	RunNumber         string `json:"run_number"`
	RunAttempt        string `json:"run_attempt"`
	Actor             string `json:"actor"`
	ActorID           string `json:"actor_id"`
	Workflow          string `json:"workflow"`
	EventName         string `json:"event_name"`
	JobWorkflowRef    string `json:"job_workflow_ref"`
	RunnerEnvironment string `json:"runner_environment"`
}

// GetAudience reports the single audience (the embedded field is shadowed).
func (c actionsClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

func (i *Issuer) serveActionsToken(w http.ResponseWriter, r *http.Request) {
	got, ok := bearerToken(r)
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(i.actionsToken)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
		return
	}
	aud := r.URL.Query().Get("audience")
	if aud == "" {
		aud = actionsDefault
	}
	now := time.Now()
	claims := actionsClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:  i.URL(),
			Subject: actionsSubject,
			// GitHub's tokens are valid from five minutes before issue
			// until five minutes after.
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Minute)),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
			ID:        newUUID(),
		},
		Audience:          aud,
		Ref:               "refs/heads/main",
		RefType:           "branch",
		SHA:               "d6b2c2e3b7f0a1c4e5d6f7a8b9c0d1e2f3a4b5c6",
		Repository:        "octo-org/octo-repo",
		RepositoryID:      "74",
		RepositoryOwner:   "octo-org",
		RepositoryOwnerID: "65",
		RunID:             "1234567890",
		RunNumber:         "42",
		RunAttempt:        "1",
		Actor:             "octocat",
		ActorID:           "583231",
		Workflow:          "CI",
		EventName:         "push",
		JobWorkflowRef:    "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
		RunnerEnvironment: "github-hosted",
	}
	tok, err := i.signingKey().sign(claims, nil)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "signing failed"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"value": tok})
}
