package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
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
	assert.Contains(t, err.Error(), `identity "identity-b" from the service account's credentials.chainguard.dev/identity annotation`)
	requireOneLine(t, err.Error())
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
	for _, version := range SupportedAPIVersions {
		req := strings.Replace(w.request(t, "request-node.json"), `"`+APIVersion+`"`, `"`+version+`"`, 1)
		out, err := w.serve(t, req)
		require.NoError(t, err)
		assert.Contains(t, out, `"apiVersion":"`+version+`"`)
	}
}

func TestRefusesUnknownAPIVersions(t *testing.T) {
	w := newWorld(t)
	node := w.request(t, "request-node.json")
	for name, version := range map[string]string{
		"v1alpha1":      APIGroup + "/v1alpha1",
		"v2":            APIGroup + "/v2",
		"no version":    APIGroup,
		"empty":         "",
		"other group":   "example.com/v1",
		"v1 and spaces": " " + APIVersion,
		"forged line":   APIVersion + "\nE0101 forged kubelet line",
		"huge":          strings.Repeat("v", 100000),
	} {
		t.Run(name, func(t *testing.T) {
			req := strings.Replace(node, `"`+APIVersion+`"`, strconv.Quote(version), 1)
			out, err := w.serve(t, req)
			require.Error(t, err)
			assert.Empty(t, out)
			msg := err.Error()
			requireOneLine(t, msg)
			assert.Contains(t, msg, `supported: "`+APIVersion+`", "`+APIVersionV1Beta1+`"`)
			assert.Zero(t, w.sb.STS.Requests())
		})
	}

	// v1beta1 has no service-account fields: a request with them is not
	// what a kubelet sends.
	tok, err := w.sb.Issuer.MintServiceAccountToken("team-a", "builder")
	require.NoError(t, err)
	req := strings.Replace(w.request(t, "request-service-account.json", "<the pod's service-account token>", tok, "<identity id>", "identity-a"),
		`"`+APIVersion+`"`, `"`+APIVersionV1Beta1+`"`, 1)
	out, err := w.serve(t, req)
	require.Error(t, err)
	assert.Empty(t, out)
	assert.Contains(t, err.Error(), "service-account fields")
	assert.False(t, strings.Contains(err.Error(), tok), "leaked the service-account token")
	requireOneLine(t, err.Error())
}

func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	return string(b)
}

// requireOneLine fails if msg could forge or flood a line of the kubelet's
// log.
func requireOneLine(t *testing.T, msg string) {
	t.Helper()
	require.False(t, strings.ContainsAny(msg, "\r\n"), "the error is one line")
	require.LessOrEqual(t, len(msg), 4096, "the error is length-capped")
}

func TestBadRequests(t *testing.T) {
	w := newWorld(t)
	node := w.cfg.IdentityToken
	expired, err := w.sb.Issuer.MintServiceAccountToken("team-a", "builder",
		sandbox.WithIssuedAt(time.Now().Add(-2*time.Hour)), sandbox.WithLifetime(time.Hour))
	require.NoError(t, err)
	fresh, err := w.sb.Issuer.MintServiceAccountToken("team-a", "builder")
	require.NoError(t, err)
	saRequest := func(tok, identity string) string {
		return w.request(t, "request-service-account.json", "<the pod's service-account token>", tok, "<identity id>", identity)
	}
	// Each case names the token it carries, or the node's when it carries
	// none, and the error must not contain that token.
	for name, tc := range map[string]struct{ req, token, want string }{
		"not JSON":      {"hello " + fresh, fresh, "not a CredentialProviderRequest"},
		"wrong kind":    {strings.Replace(saRequest(fresh, "identity-a"), `"CredentialProviderRequest"`, `"Pod"`, 1), fresh, `kind "Pod"`},
		"forged kind":   {strings.Replace(saRequest(fresh, "identity-a"), `"CredentialProviderRequest"`, `"Pod\nE0101 forged"`, 1), fresh, `kind "Pod\nE0101 forged"`},
		"no image":      {strings.Replace(saRequest(fresh, "identity-a"), `"image"`, `"picture"`, 1), fresh, "names no image"},
		"node no image": {`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest"}`, node, "names no image"},
		"expired token": {saRequest(expired, "identity-a"), expired, "expired at"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := w.serve(t, tc.req)
			require.Error(t, err)
			require.NotEmpty(t, tc.token)
			assert.False(t, strings.Contains(err.Error(), tc.token), "leaked the token in use")
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, out, "nothing on stdout in a failure")
			requireOneLine(t, err.Error())
		})
	}

	w.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: "not for you"})
	out, err := w.serve(t, w.request(t, "request-node.json"))
	require.Error(t, err)
	assert.False(t, strings.Contains(err.Error(), node), "leaked the node's token")
	assert.Contains(t, err.Error(), "not for you")
	assert.ErrorIs(t, err, creds.ErrIdentityRejected)
	assert.Empty(t, out)
	requireOneLine(t, err.Error())
}

// TestHostileIdentityAnnotation: whoever can edit a service account writes
// the annotation; it can neither forge a log line, nor flood one, nor reach
// the STS unless it is a plausible identity id.
func TestHostileIdentityAnnotation(t *testing.T) {
	w := newWorld(t)
	tok, err := w.sb.Issuer.MintServiceAccountToken("team-a", "builder")
	require.NoError(t, err)
	for name, identity := range map[string]string{
		"newline": "identity-a\nE0101 12:00:00 forged kubelet line",
		"CR":      "identity-a\rforged",
		"escape":  "identity-a\u001b[2J",
		"bidi":    "identity-a\u202e",
		"huge":    strings.Repeat("a", 1<<16),
		"a token": tok,
		"quote":   `identity-a" forged="x`,
	} {
		t.Run(name, func(t *testing.T) {
			req := strings.Replace(w.request(t, "request-service-account.json", "<the pod's service-account token>", tok),
				`"<identity id>"`, jsonString(t, identity), 1)
			out, err := w.serve(t, req)
			require.Error(t, err)
			assert.Empty(t, out)
			msg := err.Error()
			assert.ErrorIs(t, err, creds.ErrBadIdentity)
			assert.Contains(t, msg, IdentityAnnotation)
			assert.False(t, strings.Contains(msg, tok), "leaked the service-account token")
			assert.NotContains(t, msg, "forged")
			requireOneLine(t, msg)
			assert.Less(t, len(msg), 1024)
			assert.Zero(t, w.sb.STS.Requests(), "nothing reached the STS")
		})
	}
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
