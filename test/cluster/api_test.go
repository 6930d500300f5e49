//go:build e2ekubelet

package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/cgr-helper/docker-credential-cgr/test/internal/child"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// api is a minimal Kubernetes API client: plain net/http and JSON (or the
// YAML the API server also accepts), as one identity with a bearer token.
type api struct {
	base   string // https://127.0.0.1:PORT
	token  string
	client *http.Client
}

func newAPI(base, token string, ca *x509.CertPool) *api {
	return &api{base: base, token: token, client: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca, MinVersion: tls.VersionTLS12}},
	}}
}

// apiError is a non-2xx answer.
type apiError struct {
	status int
	body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("API answered %d: %s", e.status, e.body) }

func isStatus(err error, status int) bool {
	var e *apiError
	return errors.As(err, &e) && e.status == status
}

// do sends body (JSON-encoded unless it is a []byte of YAML, sent as
// application/yaml) and decodes the answer into out when it is not nil.
func (a *api) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		r, ct = bytes.NewReader(b), "application/yaml"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return err
		}
		r, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if _, raw := out.(*[]byte); raw {
		req.Header.Set("Accept", "*/*") // /openid/v1/jwks serves application/jwk-set+json only
	} else {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{resp.StatusCode, child.Redact(strings.TrimSpace(string(b)))}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	return json.Unmarshal(b, out)
}

func (a *api) get(path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.do(ctx, http.MethodGet, path, nil, out)
}

func (a *api) post(path string, body, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.do(ctx, http.MethodPost, path, body, out)
}

func (a *api) delete(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := a.do(ctx, http.MethodDelete, path, map[string]any{"gracePeriodSeconds": 0}, nil)
	if isStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

var kindLine = regexp.MustCompile(`(?m)^kind: *(\w+) *$`)

// applyYAML creates every object of a multi-document YAML stream as it
// is (the API server decodes YAML itself), like kubectl create -f, in
// namespace ns for namespaced kinds: only the kinds configure-kubelet
// --rbac prints and the README's pod section holds are known.
func (a *api) applyYAML(ns, stream string) ([]string, error) {
	paths := map[string]string{
		"ClusterRole":        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
		"ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
		"ServiceAccount":     "/api/v1/namespaces/" + ns + "/serviceaccounts",
		"Pod":                "/api/v1/namespaces/" + ns + "/pods",
	}
	var made []string
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(stream, -1) {
		m := kindLine.FindStringSubmatch(doc)
		if m == nil {
			continue // comments only
		}
		path, ok := paths[m[1]]
		if !ok {
			return made, fmt.Errorf("the YAML holds a %s, which this test does not know how to create", m[1])
		}
		var obj struct {
			Metadata struct{ Name string } `json:"metadata"`
		}
		if err := a.post(path, []byte(doc), &obj); err != nil {
			return made, fmt.Errorf("creating %s: %w", m[1], err)
		}
		made = append(made, m[1]+"/"+obj.Metadata.Name)
	}
	return made, nil
}

// event is the part of a core/v1 Event the test reads.
type event struct {
	Type           string    `json:"type"`
	Reason         string    `json:"reason"`
	Message        string    `json:"message"`
	Count          int       `json:"count"`
	FirstTimestamp time.Time `json:"firstTimestamp"`
	Source         struct {
		Component string `json:"component"`
	} `json:"source"`
}

// events lists the events about pod in ns, oldest first.
func (a *api) events(ns, pod string) ([]event, error) {
	var list struct{ Items []event }
	q := url.Values{"fieldSelector": {"involvedObject.kind=Pod,involvedObject.name=" + pod}}
	err := a.get("/api/v1/namespaces/"+ns+"/events?"+q.Encode(), &list)
	return list.Items, err
}

// pki is the cluster's TLS: one CA and the API server's serving certificate
// for 127.0.0.1.
type pki struct {
	caPEM, certPEM, keyPEM []byte
	pool                   *x509.CertPool
}

func newPKI() (*pki, error) {
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cgr-e2e-kubelet-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	p := &pki{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		pool:    x509.NewCertPool(),
	}
	p.pool.AddCert(ca)
	return p, nil
}

// serviceAccountKeys writes a fresh RSA signing key pair for the API
// server's service-account tokens: key.pem (private) and pub.pem.
func serviceAccountKeys(keyPath, pubPath string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

// secret is a random bearer token for the token file.
func secret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
