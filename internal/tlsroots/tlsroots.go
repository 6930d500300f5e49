// Package tlsroots gives the helper's HTTPS clients the system's trusted
// roots for a fraction of what loading them costs a new Go process on
// Linux.
//
// There, Go reads the first CA bundle it finds and then every file in the
// certificate folders (/etc/ssl/certs, /etc/pki/tls/certs), which on most
// distributions hold the same certificates again, one file each
// (golang/go#38869). Every cold get is a new process, and this machine
// took 16–24 ms to load the roots that way against 5–6 ms for the bundle
// alone: more than the rest of a cold get's own work.
//
// Transport verifies a server against the bundle Go would read first, and
// only if that holds no root for the server's chain does it ask again with
// Go's own system roots. The roots trusted are Go's, no more: the bundle is
// part of them, and a root only in the folders is still found.
package tlsroots

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
)

// Transport returns a RoundTripper with http.DefaultTransport's settings
// (proxy, timeouts, HTTP/2) that loads roots as the package says. It is
// one for the whole process, as http.DefaultTransport is, so the bundle is
// read once however many clients use it; nothing is read until the first
// https request, so a cached get pays nothing.
var Transport = sync.OnceValue(func() http.RoundTripper {
	base, _ := http.DefaultTransport.(*http.Transport)
	return &transport{getenv: os.Getenv, base: base, system: http.DefaultTransport}
})

// transport tries the bundle's roots first and system, Go's usual
// verification, when they know no root for the server.
type transport struct {
	getenv func(string) string
	base   *http.Transport // whose settings the bundle's transport copies; nil: none to copy
	system http.RoundTripper

	once   sync.Once
	bundle http.RoundTripper // nil: there is no bundle to read, or the user named the folders
	// missed is set once the bundle knew no root for a server; the rest of
	// the process then asks system straight away.
	missed atomic.Bool
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return t.system.RoundTrip(req)
	}
	t.once.Do(t.load)
	if t.bundle == nil || t.missed.Load() {
		return t.system.RoundTrip(req)
	}
	// The request is sent only over a verified connection, so a failed
	// verification has not used its body.
	retry, rewound := rewind(req)
	resp, err := t.bundle.RoundTrip(req)
	var unknown x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &unknown) || !rewound {
		return resp, err
	}
	t.missed.Store(true)
	return t.system.RoundTrip(retry)
}

// rewind returns a copy of req with a fresh body, if one can be had.
func rewind(req *http.Request) (*http.Request, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	r := req.Clone(req.Context())
	r.Body = body
	return r, true
}

// load reads the bundle and builds the transport that trusts it. It
// leaves t.bundle nil when Go's own loading is the right one: not on
// Linux, SSL_CERT_DIR set (the user asked for those folders), no bundle,
// or a system transport whose settings cannot be copied.
func (t *transport) load() {
	if !bundleFirst || t.getenv("SSL_CERT_DIR") != "" {
		return
	}
	if t.base == nil {
		return
	}
	pool := readBundle(bundleFiles(t.getenv))
	if pool == nil {
		return
	}
	b := t.base.Clone()
	if b.TLSClientConfig == nil {
		b.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	b.TLSClientConfig.RootCAs = pool
	t.bundle = b
}

// bundleFiles are the files Go reads its bundle from, the first that can
// be read winning: SSL_CERT_FILE, or the platform's list.
func bundleFiles(getenv func(string) string) []string {
	if f := getenv("SSL_CERT_FILE"); f != "" {
		return []string{f}
	}
	return certFiles
}

// readBundle reads the first readable file of files into a pool, or
// returns nil if none can be read or the one read holds no certificate.
func readBundle(files []string) *x509.CertPool {
	for _, f := range files {
		b, err := os.ReadFile(f) //nolint:gosec // G304: Go's own list of bundles, or SSL_CERT_FILE, which Go reads too
		if err != nil {
			continue
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil
		}
		return pool
	}
	return nil
}
