package sandbox

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"
)

// keyPair is one RS256 signing key and its key id. It is immutable once
// made, so it can be shared between goroutines without locking.
type keyPair struct {
	priv *rsa.PrivateKey
	kid  string
}

// newKeyPair makes an RSA-2048 key; 2048 bits is what real issuers use and
// keeps key generation fast enough for a test suite that makes many.
func newKeyPair() (*keyPair, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("sandbox: generating RSA key: %w", err)
	}
	return &keyPair{priv: priv, kid: thumbprint(&priv.PublicKey)}, nil
}

// sign makes a compact RS256 JWT with the kid header set. extra adds or
// overrides header fields (for example x5c, or deleting typ with a nil value).
func (k *keyPair) sign(claims jwt.Claims, extra map[string]any) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = k.kid
	for name, v := range extra {
		if v == nil {
			delete(t.Header, name)
			continue
		}
		t.Header[name] = v
	}
	return t.SignedString(k.priv)
}

// jwk renders the public half as a JSON Web Key.
func (k *keyPair) jwk() jwk {
	return jwk{
		Kty: "RSA",
		Kid: k.kid,
		Use: "sig",
		Alg: "RS256",
		N:   b64(k.priv.N.Bytes()),
		E:   b64(big.NewInt(int64(k.priv.E)).Bytes()),
	}
}

// jwk is one RSA JSON Web Key (RFC 7517), the shape Kubernetes serves.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// jwkSet is a JWKS document.
type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// publicKey decodes an RSA JWK.
func (j jwk) publicKey() (*rsa.PublicKey, error) {
	if j.Kty != "RSA" {
		return nil, fmt.Errorf("key %q has kty %q, want RSA", j.Kid, j.Kty)
	}
	n, err := base64.RawURLEncoding.DecodeString(j.N)
	if err != nil {
		return nil, fmt.Errorf("key %q: bad n: %w", j.Kid, err)
	}
	e, err := base64.RawURLEncoding.DecodeString(j.E)
	if err != nil {
		return nil, fmt.Errorf("key %q: bad e: %w", j.Kid, err)
	}
	eInt := new(big.Int).SetBytes(e)
	if len(n) == 0 || !eInt.IsInt64() || eInt.Int64() < 3 || eInt.Int64() > 1<<31-1 {
		return nil, errors.New("key " + j.Kid + ": bad modulus or exponent")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(eInt.Int64())}, nil
}

// thumbprint is the RFC 7638 JWK thumbprint of an RSA key. Using it as the
// kid is what distribution v3 expects for keys from a rootcertbundle, and it
// is stable for a key, so the kid alone identifies the key.
func thumbprint(pub *rsa.PublicKey) string {
	canonical, _ := json.Marshal(struct {
		E   string `json:"e"`
		Kty string `json:"kty"`
		N   string `json:"n"`
	}{b64(big.NewInt(int64(pub.E)).Bytes()), "RSA", b64(pub.N.Bytes())})
	sum := sha256.Sum256(canonical)
	return b64(sum[:])
}

// b64 is unpadded base64url, the JOSE encoding.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// randomHex returns n random bytes hex-encoded; used for ids and bearers.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b)
}

// newUUID returns a random RFC 4122 version 4 UUID, like Kubernetes uids.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return formatUUID(b)
}

// stableUUID derives a UUID from parts, so the same service account (or pod)
// keeps the same uid across tokens, as it does in a real cluster.
func stableUUID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return formatUUID(h.Sum(nil)[:16])
}

func formatUUID(b []byte) string {
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
