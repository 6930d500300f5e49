package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

type world struct {
	sb   *sandbox.Sandbox
	cfg  creds.Config
	host string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sb, err := sandbox.Start()
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	node, err := sb.Issuer.MintServiceAccountToken("kube-system", "node-puller")
	require.NoError(t, err)
	dir := t.TempDir()
	return &world{sb: sb, host: sb.Registry.Host(), cfg: creds.Config{
		Identity:      sandbox.DefaultIdentity,
		IdentityToken: node,
		Issuer:        sb.STS.URL(),
		Audience:      creds.DefaultAudience,
		Registries:    []string{sb.Registry.Host()},
		CacheDir:      filepath.Join(dir, "cache"),
		TokenPath:     filepath.Join(dir, "none"),
		Timeout:       10 * time.Second,
	}}
}

// serve runs one request and returns stdout.
func (w *world) serve(t *testing.T, request string) (string, error) {
	t.Helper()
	h, err := creds.New(w.cfg)
	require.NoError(t, err)
	var out bytes.Buffer
	err = Serve(context.Background(), h, strings.NewReader(request), &out)
	return out.String(), err
}

// request reads a golden request, aimed at the sandbox registry.
func (w *world) request(t *testing.T, name string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	s := strings.ReplaceAll(string(b), `"cgr.dev/`, `"`+w.host+`/`)
	return strings.NewReplacer(replace...).Replace(s)
}

// checkResponse verifies a live response against testdata/response.json:
// everything equal but the token (verified with the STS instead, and its
// subject returned) and the cache duration (which depends on the clock).
func (w *world) checkResponse(t *testing.T, out string) (subject string) {
	t.Helper()
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got), "stdout is one JSON object")
	d, err := time.ParseDuration(got["cacheDuration"].(string))
	require.NoError(t, err)
	assert.True(t, d > 54*time.Minute && d <= 55*time.Minute, "cacheDuration %s is the token's life left minus the 5-minute margin", d)
	got["cacheDuration"] = "55m0s"

	auth := got["auth"].(map[string]any)
	entry, ok := auth[w.host].(map[string]any)
	require.True(t, ok, "auth is keyed by the image's registry host, port included")
	subject, err = w.sb.STS.VerifyToken(entry["password"].(string), sandbox.RegistryAudience)
	require.NoError(t, err)
	entry["password"] = "<registry token>"
	delete(auth, w.host)
	auth["cgr.dev"] = entry

	want, err := os.ReadFile(filepath.Join("testdata", "response.json"))
	require.NoError(t, err)
	normalised, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(normalised))
	return subject
}

func TestNodeMode(t *testing.T) {
	w := newWorld(t)
	out, err := w.serve(t, w.request(t, "request-node.json"))
	require.NoError(t, err)
	assert.Equal(t, sandbox.DefaultIdentity, w.checkResponse(t, out))
	assert.True(t, strings.HasSuffix(out, "}\n") && strings.Count(out, "\n") == 1, "exactly one JSON line")
	assert.Equal(t, sandbox.DefaultIdentity, w.sb.STS.LastRequest().Form.Get("identity"))
}

func TestServiceAccountMode(t *testing.T) {
	w := newWorld(t)
	for _, team := range []string{"a", "b"} {
		w.sb.STS.AddIdentity("identity-"+team, sandbox.Identity{
			Issuer:         w.sb.Issuer.URL(),
			SubjectPattern: "system:serviceaccount:team-" + team + ":builder",
		})
	}
	saRequest := func(team, identity string) string {
		tok, err := w.sb.Issuer.MintServiceAccountToken("team-"+team, "builder")
		require.NoError(t, err)
		return w.request(t, "request-service-account.json",
			"<the pod's service-account token>", tok, "<identity id>", identity)
	}

	out, err := w.serve(t, saRequest("a", "identity-a"))
	require.NoError(t, err)
	assert.Equal(t, "identity-a", w.checkResponse(t, out), "the annotation names the identity")
	assert.Equal(t, "system:serviceaccount:team-a:builder", actSubject(t, out, w.host), "the pod's own token was exchanged")

	outB, err := w.serve(t, saRequest("b", "identity-b"))
	require.NoError(t, err)
	assert.Equal(t, "identity-b", w.checkResponse(t, outB))
	assert.Equal(t, 2, w.sb.STS.Exchanges(), "two service accounts never share a cache entry")

	// Another pod of team a, with a fresh token: served from the cache.
	_, err = w.serve(t, saRequest("a", "identity-a"))
	require.NoError(t, err)
	assert.Equal(t, 2, w.sb.STS.Exchanges())

	// An annotation naming an identity the account may not assume: the
	// error says the annotation is where to look.
	_, err = w.serve(t, saRequest("a", "identity-b"))
	require.Error(t, err)
	assert.ErrorIs(t, err, creds.ErrIdentityRejected)
	assert.Contains(t, err.Error(), "identity identity-b from the service account's credentials.chainguard.dev/identity annotation")
	assert.NotContains(t, err.Error(), "set CHAINGUARD_IDENTITY", "the annotation, not the variable, chose the identity")

	// Without the annotation, CHAINGUARD_IDENTITY applies.
	plain := strings.Replace(saRequest("a", ""), `"credentials.chainguard.dev/identity": ""`, `"other": "x"`, 1)
	out, err = w.serve(t, plain)
	require.NoError(t, err)
	assert.Equal(t, sandbox.DefaultIdentity, w.checkResponse(t, out))
}

// actSubject reads the ambient subject the STS recorded in the issued
// token's act claim.
func actSubject(t *testing.T, out, host string) string {
	t.Helper()
	var resp struct {
		Auth map[string]AuthConfig `json:"auth"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &resp))
	var claims struct {
		jwt.RegisteredClaims
		Act struct {
			Sub string `json:"sub"`
		} `json:"act"`
	}
	_, _, err := jwt.NewParser().ParseUnverified(resp.Auth[host].Password, &claims)
	require.NoError(t, err)
	return claims.Act.Sub
}

func TestUnservedRegistryGetsNoCredentials(t *testing.T) {
	w := newWorld(t)
	out, err := w.serve(t, strings.Replace(w.request(t, "request-node.json"), w.host, "ghcr.io", 1))
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join("testdata", "response-not-served.json"))
	require.NoError(t, err)
	assert.JSONEq(t, string(want), out)
	assert.Equal(t, 0, w.sb.STS.Requests())
}

func TestEchoesTheRequestAPIVersion(t *testing.T) {
	w := newWorld(t)
	req := strings.Replace(w.request(t, "request-node.json"), "/v1\"", "/v1beta1\"", 1)
	out, err := w.serve(t, req)
	require.NoError(t, err)
	assert.Contains(t, out, `"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1"`)
}

func TestBadRequests(t *testing.T) {
	w := newWorld(t)
	expired, err := w.sb.Issuer.MintServiceAccountToken("team-a", "builder",
		sandbox.WithIssuedAt(time.Now().Add(-2*time.Hour)), sandbox.WithLifetime(time.Hour))
	require.NoError(t, err)
	for name, tc := range map[string]struct{ req, want string }{
		"not JSON":   {"hello", "not a CredentialProviderRequest"},
		"wrong kind": {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Pod","image":"x"}`, `kind "Pod"`},
		"no image":   {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest"}`, "names no image"},
		"expired token": {w.request(t, "request-service-account.json",
			"<the pod's service-account token>", expired, "<identity id>", "identity-a"), "expired at"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := w.serve(t, tc.req)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, out, "nothing on stdout in a failure")
			assert.False(t, strings.Contains(err.Error(), expired), "no token in the error")
		})
	}

	w.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: "not for you"})
	out, err := w.serve(t, w.request(t, "request-node.json"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not for you")
	assert.ErrorIs(t, err, creds.ErrIdentityRejected)
	assert.Empty(t, out)
}

func TestRegistryOf(t *testing.T) {
	for image, want := range map[string]string{
		"cgr.dev/chainguard/static:latest": "cgr.dev",
		"127.0.0.1:5000/a/b@sha256:abc":    "127.0.0.1:5000",
		"foo.cgr.dev/org/img":              "foo.cgr.dev",
		"nginx":                            "nginx",
	} {
		assert.Equal(t, want, registryOf(image), image)
	}
}
