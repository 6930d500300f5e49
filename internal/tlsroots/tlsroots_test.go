//go:build linux

package tlsroots

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// counting is the system transport of a test: Go's verification with the
// server's root, counting the requests it is asked.
type counting struct {
	rt    http.RoundTripper
	calls atomic.Int32
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	return c.rt.RoundTrip(r)
}

// setup starts a TLS server that echoes request bodies and returns a
// transport whose bundle is the file holding bundlePEM (nothing written
// when it is empty), with env as the environment.
func setup(t *testing.T, bundlePEM []byte, env map[string]string) (*httptest.Server, *transport, *counting) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(w, r.Body)
	}))
	t.Cleanup(srv.Close)
	if _, ok := env["SSL_CERT_FILE"]; !ok {
		env["SSL_CERT_FILE"] = filepath.Join(t.TempDir(), "bundle.pem")
		if len(bundlePEM) > 0 {
			require.NoError(t, os.WriteFile(env["SSL_CERT_FILE"], bundlePEM, 0o600))
		}
	}
	base := srv.Client().Transport.(*http.Transport).Clone()
	system := &counting{rt: base}
	return srv, &transport{getenv: func(k string) string { return env[k] }, base: base, system: system}, system
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// otherRoot is a self-signed certificate the test servers do not chain to.
func otherRoot(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func post(t *testing.T, rt http.RoundTripper, url, body string) (string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b), nil
}

func TestTheBundleAloneVerifiesAServerItHasTheRootOf(t *testing.T) {
	t.Parallel()
	srv, tr, system := setup(t, nil, map[string]string{})
	require.NoError(t, os.WriteFile(tr.getenv("SSL_CERT_FILE"), append(otherRoot(t), certPEM(srv.Certificate())...), 0o600))
	for range 2 {
		got, err := post(t, tr, srv.URL, "form")
		require.NoError(t, err)
		assert.Equal(t, "form", got)
	}
	assert.Zero(t, system.calls.Load(), "the system roots were never loaded")
}

func TestARootOnlyTheSystemKnowsIsFoundThere(t *testing.T) {
	t.Parallel()
	srv, tr, system := setup(t, otherRoot(t), map[string]string{})
	got, err := post(t, tr, srv.URL, "the body, sent once more")
	require.NoError(t, err)
	assert.Equal(t, "the body, sent once more", got, "the retry carries the whole body")
	assert.Equal(t, int32(1), system.calls.Load())
	_, err = post(t, tr, srv.URL, "again")
	require.NoError(t, err)
	assert.Equal(t, int32(2), system.calls.Load(), "once the bundle missed, the system roots are asked first")
}

func TestAServerNeitherKnowsIsRefused(t *testing.T) {
	t.Parallel()
	srv, tr, _ := setup(t, otherRoot(t), map[string]string{})
	tr.system = http.DefaultTransport // this machine's roots, which do not hold the test root either
	_, err := post(t, tr, srv.URL, "x")
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown, "Go's own verdict")
}

func TestOnlyAnUnknownRootFallsBack(t *testing.T) {
	t.Parallel()
	srv, tr, system := setup(t, nil, map[string]string{})
	require.NoError(t, os.WriteFile(tr.getenv("SSL_CERT_FILE"), certPEM(srv.Certificate()), 0o600))
	// The test certificate is for 127.0.0.1 and example.com, not localhost.
	_, err := post(t, tr, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1), "x")
	var wrongHost x509.HostnameError
	require.ErrorAs(t, err, &wrongHost)
	assert.Zero(t, system.calls.Load(), "a certificate for another name is not retried")
}

func TestGoLoadsTheRootsItselfWhen(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]map[string]string{
		"SSL_CERT_DIR is set": {"SSL_CERT_DIR": "/etc/ssl/certs"},
		"there is no bundle":  {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, tr, system := setup(t, nil, env)
			_, err := post(t, tr, srv.URL, "x")
			require.NoError(t, err)
			assert.Equal(t, int32(1), system.calls.Load())
			assert.Nil(t, tr.bundle)
		})
	}
}

func TestPlainHTTPIsNotTouched(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	system := &counting{rt: http.DefaultTransport}
	tr := &transport{getenv: func(string) string { t.Error("the environment was read"); return "" }, base: &http.Transport{}, system: system}
	_, err := post(t, tr, srv.URL, "x")
	require.NoError(t, err)
	assert.Equal(t, int32(1), system.calls.Load())
}

func TestABodyThatCannotBeSentAgainIsNotRetried(t *testing.T) {
	t.Parallel()
	srv, tr, system := setup(t, otherRoot(t), map[string]string{})
	req, err := http.NewRequest(http.MethodPost, srv.URL, io.NopCloser(strings.NewReader("once")))
	require.NoError(t, err)
	require.Nil(t, req.GetBody)
	resp, err := tr.RoundTrip(req)
	if err == nil {
		_ = resp.Body.Close()
	}
	var unknown x509.UnknownAuthorityError
	require.True(t, errors.As(err, &unknown), "the bundle's verdict stands: %v", err)
	assert.Zero(t, system.calls.Load())
}

// The files are the ones Go reads, in its order; on this machine, one of
// them is there and holds roots.
func TestTheBundleIsGos(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "/etc/ssl/certs/ca-certificates.crt", certFiles[0])
	assert.Equal(t, []string{"/x.pem"}, bundleFiles(func(k string) string { return map[string]string{"SSL_CERT_FILE": "/x.pem"}[k] }))
	if _, err := os.Stat(certFiles[0]); err == nil {
		assert.NotNil(t, readBundle(certFiles), "this machine's bundle")
	}
	assert.Nil(t, readBundle([]string{"/nonexistent"}))
}
