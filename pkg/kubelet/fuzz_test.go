package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// The kubelet request decoder is where a pod's author (image name,
// service-account annotations) and the cluster (service-account token) put
// text into a process that runs as root and logs to the kubelet's log.
// FuzzServe drives Serve end to end with a loopback STS stand-in that is
// unreachable, rejects, or answers, and checks properties rather than "no
// panic":
//
//   - a failure writes nothing on stdout and is one line (no line break of
//     any kind), at most maxFuzzErr bytes, whatever the request's size;
//   - no failure shows the request's serviceAccountToken (when it is at
//     least 16 bytes) or any dot-separated part of it of 16 bytes or more,
//     the node's ambient token, or the issued registry token;
//   - a success is exactly one JSON line, kind CredentialProviderResponse,
//     echoing a request apiVersion this binary implements, with credentials
//     only for a registry the configuration serves, keyed by the image's
//     registry host, and a positive cacheDuration.
//
// mode selects how the request is made, so the fuzzer reaches past the JSON
// decoder: 0 the raw bytes as they are; 1 a well-formed request in
// service-account mode whose token is a JWT with the fuzzed claims; 2 the
// same in node mode (the node's token carries the claims); 3
// service-account mode with the fuzzed iss string itself as the token.
// mode/4 picks the STS stand-in's behaviour.
func FuzzServe(f *testing.F) {
	for _, raw := range []string{
		`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"cgr.dev/chainguard/static:latest"}`,
		`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"cgr.dev/x","serviceAccountToken":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl","serviceAccountAnnotations":{"credentials.chainguard.dev/identity":"id\nforged line"}}`,
		`{"apiVersion":"credentialprovider.kubelet.k8s.io/v9","kind":"CredentialProviderRequest","image":"ghcr.io/x"}`,
		`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Pod\nnext line","image":"x"}`,
		`{"kind":` + strings.Repeat(`"`, 3),
		"hello",
		"",
	} {
		f.Add([]byte(raw), "", "", "", "", "", int64(0), uint8(0))
	}
	v1 := APIGroup + "/v1"
	f.Add([]byte(nil), v1, "cgr.dev/chainguard/static", "", "https://kubernetes.default.svc", "system:serviceaccount:team-a:builder", int64(3600), uint8(1))
	f.Add([]byte(nil), v1, "foo.cgr.dev/org/img", "identity\r\nforged", "https://k8s", "system:serviceaccount:a:b", int64(3600), uint8(1+4))
	f.Add([]byte(nil), v1, "registry.example.com:5000/a", "", "iss", "sub\nline", int64(7200), uint8(2+4))
	f.Add([]byte(nil), v1, "cgr.dev/x", "", "iss", "sub", int64(3600), uint8(2+8))
	f.Add([]byte(nil), APIGroup+"/v1beta1", "CGR.DEV:443/x", "", "iss", "sub", int64(3600), uint8(1+8))
	f.Add([]byte(nil), APIGroup+"/v0", "cgr.dev/x", "", "iss", "sub", int64(3600), uint8(1+8))
	f.Add([]byte(nil), v1, "cgr.dev/x", "", "iss", "sub", int64(-60), uint8(1))
	f.Add([]byte(nil), v1, "evil.com/.cgr.dev/x", "", "iss", "sub", int64(3600), uint8(1+8))
	f.Add([]byte(nil), v1, "cgr.dev/x", "", "not a jwt but a long secret value", "", int64(0), uint8(3))
	f.Add([]byte(nil), v1, "cgr.dev/x", "", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl\n", "", int64(0), uint8(3))

	base, err := creds.LoadConfig(func(k string) string {
		return map[string]string{
			"XDG_CONFIG_HOME":     f.TempDir(),
			"CHAINGUARD_REGISTRY": strings.Join(fuzzRegistries, ","),
			"CHAINGUARD_NO_CACHE": "true",
			"CHAINGUARD_IDENTITY": "fuzz-identity",
		}[k]
	})
	if err != nil {
		f.Fatal(err)
	}
	issuers := fuzzSTS(f)
	defaultNode := mintFuzzJWT(f, jwt.MapClaims{"iss": "https://node", "sub": "node", "aud": creds.EnforceAudience, "exp": fuzzNow.Add(time.Hour).Unix()})

	f.Fuzz(func(t *testing.T, raw []byte, apiVersion, image, annotation, iss, sub string, lifetime int64, mode uint8) {
		cfg := base
		cfg.IdentityToken = defaultNode
		strong := []string{defaultNode, jwtSignature(defaultNode), fuzzIssued} // effectively random: compared directly
		var request, sat string
		switch mode % 4 {
		case 0:
			request = string(raw)
			// Whatever decodes as the token, even from a request that is
			// otherwise refused, is a secret.
			var loose struct {
				ServiceAccountToken string `json:"serviceAccountToken"`
			}
			_ = json.Unmarshal(raw, &loose)
			sat = loose.ServiceAccountToken
		case 1, 2:
			lifetime %= 10 * 365 * 24 * 3600
			tok := mintFuzzJWT(t, jwt.MapClaims{"iss": iss, "sub": sub, "aud": creds.EnforceAudience, "exp": fuzzNow.Unix() + lifetime})
			strong = append(strong, tok, jwtSignature(tok))
			if mode%4 == 1 {
				sat = tok
			} else {
				cfg.IdentityToken = tok
			}
			request = buildRequest(t, apiVersion, image, sat, annotation)
		case 3:
			sat = iss
			request = buildRequest(t, apiVersion, image, sat, annotation)
		}
		cfg.Issuer = issuers[mode/4%3]
		h, err := creds.New(cfg, creds.WithClock(func() time.Time { return fuzzNow }))
		if err != nil {
			t.Fatalf("creds.New: %v", err)
		}
		run := func(request string) (string, error) {
			var out bytes.Buffer
			err := Serve(context.Background(), h, strings.NewReader(request), &out)
			return out.String(), err
		}

		out, err := run(request)
		if err != nil {
			msg := err.Error()
			if out != "" {
				t.Errorf("a failure also wrote %d bytes on stdout", len(out))
			}
			if i := strings.IndexAny(msg, lineBreaks); i >= 0 {
				t.Errorf("the error is not one line: a line break at byte %d of %d", i, len(msg))
			}
			if len(msg) > maxFuzzErr {
				t.Errorf("the error is %d bytes, more than %d", len(msg), maxFuzzErr)
			}
			for i, s := range strong {
				if strings.Contains(msg, s) {
					t.Errorf("the error shows secret #%d (a token or its signature)", i)
				}
			}
			for _, s := range secretPieces(sat) {
				if strings.Contains(msg, s) && echoed(s, sat, func(sat string) string {
					r := withToken(request, sat)
					if mode%4 != 0 {
						r = buildRequest(t, apiVersion, image, sat, annotation)
					}
					_, err := run(r)
					if err == nil {
						return ""
					}
					return err.Error()
				}) {
					t.Errorf("the error shows the request's serviceAccountToken or a %d-byte part of it", len(s))
				}
			}
			return
		}

		if !strings.HasSuffix(out, "}\n") || strings.Count(out, "\n") != 1 {
			t.Fatalf("stdout is not exactly one JSON line")
		}
		var resp struct {
			APIVersion    string                `json:"apiVersion"`
			Kind          string                `json:"kind"`
			CacheKeyType  string                `json:"cacheKeyType"`
			CacheDuration *string               `json:"cacheDuration"`
			Auth          map[string]AuthConfig `json:"auth"`
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("stdout is not JSON: %v", err)
		}
		var req struct {
			APIVersion string `json:"apiVersion"`
			Image      string `json:"image"`
		}
		_ = json.Unmarshal([]byte(request), &req)
		if resp.Kind != "CredentialProviderResponse" || resp.CacheKeyType != "Registry" {
			t.Errorf("kind %q cacheKeyType %q", resp.Kind, resp.CacheKeyType)
		}
		if !supportedAPIVersions[resp.APIVersion] {
			t.Errorf("answered with apiVersion %q, which this binary does not implement", resp.APIVersion)
		}
		if resp.APIVersion != req.APIVersion {
			t.Errorf("apiVersion %q does not echo the request's %q", resp.APIVersion, req.APIVersion)
		}
		if len(resp.Auth) > 1 {
			t.Errorf("credentials for %d registries, for one image", len(resp.Auth))
		}
		for key, a := range resp.Auth {
			host, _, _ := strings.Cut(req.Image, "/")
			if key != host {
				t.Errorf("auth key %q is not the image's registry host %q", key, host)
			}
			if !oracleServes(creds.NormalizeHost(key)) {
				t.Errorf("credentials for %q (normalised %q), which is not a configured registry %v", key, creds.NormalizeHost(key), fuzzRegistries)
			}
			if a.Username != creds.Username || a.Password != fuzzIssued {
				t.Errorf("auth for %q is not the issued token under %q", key, creds.Username)
			}
			if resp.CacheDuration == nil {
				t.Errorf("credentials without a cacheDuration")
			} else if d, err := time.ParseDuration(*resp.CacheDuration); err != nil || d <= 0 || d > time.Hour {
				t.Errorf("cacheDuration %q for a token with an hour left", *resp.CacheDuration)
			}
		}
		if len(resp.Auth) == 0 && oracleServes(creds.NormalizeHost(strings.SplitN(req.Image, "/", 2)[0])) {
			t.Errorf("no credentials for served registry of image %q", req.Image)
		}
	})
}

// FuzzReadRequest checks the decoder alone on raw bytes: it never panics,
// and a refusal is one bounded line that never shows the request's
// serviceAccountToken or a long part of it. It runs far faster than
// FuzzServe, so it explores the JSON decoder's corners more deeply.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"cgr.dev/chainguard/static:latest"}`))
	f.Add([]byte(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1\u2028x","kind":"CredentialProviderRequest\n","image":"x","serviceAccountToken":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"}`))
	f.Add([]byte(`{"kind":"` + strings.Repeat("A", 5000) + `","serviceAccountToken":"secretsecretsecretsecret"}`))
	f.Add([]byte(`{"serviceAccountToken":{"x":1},"image":7}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := readRequest(bytes.NewReader(raw))
		if err == nil {
			if req.Kind != "CredentialProviderRequest" || req.Image == "" {
				t.Errorf("accepted kind %q image %q", req.Kind, req.Image)
			}
			if !supportedAPIVersions[req.APIVersion] {
				t.Errorf("accepted apiVersion %q, which this binary does not implement", req.APIVersion)
			}
			return
		}
		msg := err.Error()
		if i := strings.IndexAny(msg, lineBreaks); i >= 0 {
			t.Errorf("the error is not one line: a line break at byte %d of %d", i, len(msg))
		}
		if len(msg) > maxFuzzErr {
			t.Errorf("the error is %d bytes, more than %d", len(msg), maxFuzzErr)
		}
		var loose struct {
			ServiceAccountToken string `json:"serviceAccountToken"`
		}
		_ = json.Unmarshal(raw, &loose)
		for _, s := range secretPieces(loose.ServiceAccountToken) {
			if strings.Contains(msg, s) && echoed(s, loose.ServiceAccountToken, func(sat string) string {
				_, err := readRequest(strings.NewReader(withToken(string(raw), sat)))
				if err == nil {
					return ""
				}
				return err.Error()
			}) {
				t.Errorf("the error shows the request's serviceAccountToken or a %d-byte part of it", len(s))
			}
		}
	})
}

const (
	// maxFuzzErr bounds a failure's message: a request of up to 1 MiB must
	// not become a log line of more than this. Room for the longest fixed
	// text, a few capped quotes and a capped server message.
	maxFuzzErr = 4096
	// lineBreaks are what a log viewer may start a new line at.
	lineBreaks = "\r\n\v\f\u0085\u2028\u2029"
	fuzzIssued = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJjZ3IuZGV2IiwiZXhwIjoxOTAwMDAzNjAwfQ.aXNzdWVkLXJlZ2lzdHJ5LXRva2VuLXNpZ25hdHVyZQ"
)

var (
	fuzzNow        = time.Unix(1_900_000_000, 0)
	fuzzRegistries = []string{"cgr.dev", "*.cgr.dev", "registry.example.com:5000"}
	// The request versions the kubelet has defined; each is one this
	// binary may implement. Anything else must be refused.
	supportedAPIVersions = map[string]bool{
		APIGroup + "/v1":       true,
		APIGroup + "/v1beta1":  true,
		APIGroup + "/v1alpha1": true,
	}
)

// oracleServes is an independent reading of fuzzRegistries: exactly
// cgr.dev, a proper subdomain of it, or registry.example.com:5000.
func oracleServes(host string) bool {
	if host == "cgr.dev" || host == "registry.example.com:5000" {
		return true
	}
	sub, ok := strings.CutSuffix(host, ".cgr.dev")
	return ok && sub != ""
}

// fuzzSTS stands in for the STS on loopback and returns an issuer URL for
// each behaviour: 0 unreachable (TLS with a certificate the helper does not
// trust, which fails at once, without retries), 1 rejecting the exchange,
// 2 issuing fuzzIssued, which has an hour of life.
func fuzzSTS(f *testing.F) [3]string {
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/reject/") {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"code":7,"message":"identity mismatch","details":[]}`)
			return
		}
		_, _ = io.WriteString(w, `{"token":"`+fuzzIssued+`"}`)
	})
	untrusted, sts := httptest.NewTLSServer(answer), httptest.NewServer(answer)
	f.Cleanup(untrusted.Close)
	f.Cleanup(sts.Close)
	return [3]string{untrusted.URL, sts.URL + "/reject", sts.URL + "/issue"}
}

func buildRequest(t *testing.T, apiVersion, image, sat, annotation string) string {
	m := map[string]any{"apiVersion": apiVersion, "kind": "CredentialProviderRequest", "image": image}
	if sat != "" {
		m["serviceAccountToken"] = sat
		m["serviceAccountAnnotations"] = map[string]string{IdentityAnnotation: annotation, "other": annotation}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mintFuzzJWT(t testing.TB, claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("fuzz-key"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jwtSignature(tok string) string { return tok[strings.LastIndexByte(tok, '.')+1:] }

// secretPieces is what must never be shown of a secret value: the value
// itself and each dot-separated part, when 16 bytes or longer (shorter ones
// would match ordinary words).
func secretPieces(secret string) []string {
	var out []string
	if len(secret) >= 16 {
		out = append(out, secret)
	}
	if parts := strings.Split(secret, "."); len(parts) > 1 {
		for _, p := range parts {
			if len(p) >= 16 {
				out = append(out, p)
			}
		}
	}
	return out
}

// echoed tells a real echo of s, a piece of the token sat, in a message
// from a coincidence (s being a piece of the message's own fixed text, or of
// another field that happens to hold the same text, which a fuzzer can
// produce): rerun makes the message again with s replaced by a same-length
// canary in the token only. s came from the token if the new message no
// longer holds it.
func echoed(s, sat string, rerun func(sat string) string) bool {
	c := canary(s)
	if c == s {
		return true // nothing to rotate: no way to tell, so it counts
	}
	return !strings.Contains(rerun(strings.ReplaceAll(sat, s, c)), s)
}

// withToken is the JSON request raw with its serviceAccountToken (matched
// case-insensitively, as encoding/json does) set to sat and every other
// member kept. A request that is not a JSON object is returned as it is.
func withToken(raw, sat string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(raw), &m) != nil {
		return raw
	}
	v, _ := json.Marshal(sat)
	for k := range m {
		if strings.EqualFold(k, "serviceAccountToken") {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return string(b)
}

// canary rotates every letter and digit of s, keeping its length and shape.
func canary(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + (c-'a'+1)%26
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + (c-'A'+1)%26
		case c >= '0' && c <= '9':
			b[i] = '0' + (c-'0'+1)%10
		}
	}
	return string(b)
}
