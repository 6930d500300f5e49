package sandbox

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// realmIssuer is the iss of registry tokens; a distribution registry
	// pointed at the realm is configured with it.
	realmIssuer = "sandbox-realm"
	// realmTokenLifetime matches the expires_in that cgr.dev answers.
	realmTokenLifetime = 5 * time.Minute
	// tokenUsername is the only username the realm accepts with an STS
	// token as the password.
	tokenUsername = "_token"
)

// TokenRealm issues distribution-style registry JWTs in exchange for STS
// tokens, as cgr.dev's token endpoint does. The tokens are RS256 with an
// "x5c" header holding a self-signed certificate for the signing key, so
// the CNCF distribution registry can verify them with CertificatePEM as its
// rootcertbundle.
type TokenRealm struct {
	sts      *STS
	service  string
	key      *keyPair
	certDER  []byte
	requests atomic.Int64
}

// NewTokenRealm makes a realm for service that accepts tokens sts issued
// for audience service (for cgr.dev, service and audience are both
// "cgr.dev"). Serve it with any HTTP server, at any path.
func NewTokenRealm(sts *STS, service string) (*TokenRealm, error) {
	k, err := newKeyPair()
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("sandbox: certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: realmIssuer},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true, // it is its own root in the verifier's bundle
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.priv.PublicKey, k.priv)
	if err != nil {
		return nil, fmt.Errorf("sandbox: self-signing realm certificate: %w", err)
	}
	return &TokenRealm{sts: sts, service: service, key: k, certDER: der}, nil
}

// CertificatePEM is the realm's self-signed certificate, for a distribution
// registry's auth.token.rootcertbundle.
func (t *TokenRealm) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: t.certDER})
}

// Issuer is the iss of the realm's tokens (distribution's auth.token.issuer).
func (t *TokenRealm) Issuer() string { return realmIssuer }

// Service is the registry service the realm issues tokens for
// (distribution's auth.token.service).
func (t *TokenRealm) Service() string { return t.service }

// Requests is the number of token requests the realm received.
func (t *TokenRealm) Requests() int { return int(t.requests.Load()) }

// resourceActions is one entry of a registry token's "access" claim.
type resourceActions struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// realmClaims is distribution's token claim set.
type realmClaims struct {
	jwt.RegisteredClaims
	// A plain string: distribution before v3 decodes aud into a string and
	// rejects an array.
	Audience string            `json:"aud"`
	Access   []resourceActions `json:"access"`
}

// GetAudience reports the single audience (the embedded field is shadowed).
func (c realmClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// grants reports whether the token allows action on resource typ/name.
func (c *realmClaims) grants(typ, name, action string) bool {
	return slices.ContainsFunc(c.Access, func(a resourceActions) bool {
		return a.Type == typ && a.Name == name && slices.Contains(a.Actions, action)
	})
}

// tokenResponse is the realm's success body; "token" and "access_token"
// carry the same value, as distribution's token spec allows.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// ServeHTTP answers token requests: GET with HTTP Basic "_token:<STS
// token>" (what docker and go-containerregistry send), or containerd's
// OAuth2 password grant (POST form grant_type=password, username, password).
func (t *TokenRealm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.requests.Add(1)
	var (
		user, pass string
		hasCreds   bool
		params     = r.URL.Query()
	)
	switch r.Method {
	case http.MethodGet:
		user, pass, hasCreds = r.BasicAuth()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			writeRegistryError(w, http.StatusBadRequest, "UNSUPPORTED", "malformed form body")
			return
		}
		params = r.PostForm
		if g := params.Get("grant_type"); g != "password" {
			// containerd falls back to GET with Basic on a 400.
			writeRegistryError(w, http.StatusBadRequest, "UNSUPPORTED", fmt.Sprintf("grant_type %q is not supported; use the password grant or GET with Basic auth", g))
			return
		}
		user, pass = params.Get("username"), params.Get("password")
		hasCreds = user != "" || pass != ""
	default:
		writeRegistryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "use GET or POST")
		return
	}
	if s := params.Get("service"); s != "" && s != t.service {
		writeRegistryError(w, http.StatusBadRequest, "UNSUPPORTED", fmt.Sprintf("unknown service %q; this realm serves %q", s, t.service))
		return
	}
	if !hasCreds {
		writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required: use username "+tokenUsername+" and a Chainguard token as the password")
		return
	}
	if user != tokenUsername {
		writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", fmt.Sprintf("username must be %q", tokenUsername))
		return
	}
	sub, err := t.sts.VerifyToken(pass, t.service)
	if err != nil {
		writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid Chainguard token: "+err.Error())
		return
	}
	tok, issued, err := t.issue(sub, pullAccess(params["scope"]))
	if err != nil {
		writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", "signing token: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{
		Token:       tok,
		AccessToken: tok,
		ExpiresIn:   int(realmTokenLifetime / time.Second),
		IssuedAt:    issued.UTC().Format(time.RFC3339),
	})
}

// issue signs a registry token for sub with access.
func (t *TokenRealm) issue(sub string, access []resourceActions) (string, time.Time, error) {
	now := time.Now()
	claims := realmClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    realmIssuer,
			Subject:   sub,
			ExpiresAt: jwt.NewNumericDate(now.Add(realmTokenLifetime)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        randomHex(16),
		},
		Audience: t.service,
		Access:   access,
	}
	tok, err := t.key.sign(claims, map[string]any{
		"x5c": []string{base64.StdEncoding.EncodeToString(t.certDER)}, // x5c is standard base64, not base64url
	})
	return tok, now, err
}

// verify checks a registry token the realm issued: signature, iss, aud, exp.
func (t *TokenRealm) verify(raw string) (*realmClaims, error) {
	var c realmClaims
	_, err := jwt.ParseWithClaims(raw, &c, func(tok *jwt.Token) (any, error) {
		if kid, _ := tok.Header["kid"].(string); kid != t.key.kid {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		return &t.key.priv.PublicKey, nil
	},
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(realmIssuer),
		jwt.WithAudience(t.service),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
	)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// pullAccess turns requested scopes into granted access. Each scope
// parameter may hold several space-separated scopes (containerd sends them
// that way). Only repository pull is ever granted; push and everything else
// are silently dropped, as a token server does for actions a user lacks.
func pullAccess(scopes []string) []resourceActions {
	access := []resourceActions{}
	for _, param := range scopes {
		for _, scope := range strings.Fields(param) {
			typ, rest, ok := strings.Cut(scope, ":")
			i := strings.LastIndex(rest, ":")
			if !ok || typ != "repository" || i <= 0 {
				continue
			}
			name, actions := rest[:i], strings.Split(rest[i+1:], ",")
			if !slices.Contains(actions, "pull") && !slices.Contains(actions, "*") {
				continue
			}
			if !slices.ContainsFunc(access, func(a resourceActions) bool { return a.Name == name }) {
				access = append(access, resourceActions{Type: "repository", Name: name, Actions: []string{"pull"}})
			}
		}
	}
	return access
}

// registryError is distribution's error body.
type registryError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeRegistryError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string][]registryError{"errors": {{Code: code, Message: message}}})
}
