package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// These tests prove the protocol adapter alone: a fake Provider stands in
// for the helper, so no issuer, STS or cache is involved. kubelet_test.go
// runs the same protocol through the real helper against the sandbox.

// fakeProvider answers every pull with cred, ok and err, and records what
// it was asked and whether the call had a deadline.
type fakeProvider struct {
	cred        creds.Credential
	ok          bool
	err         error
	pulls       []creds.Pull
	hadDeadline bool
}

func (f *fakeProvider) PullCredential(ctx context.Context, p creds.Pull) (creds.Credential, bool, error) {
	f.pulls = append(f.pulls, p)
	_, f.hadDeadline = ctx.Deadline()
	return f.cred, f.ok, f.err
}

// served answers like the helper for a served registry, with the
// placeholders testdata/response.json holds.
func served() *fakeProvider {
	return &fakeProvider{
		cred: creds.Credential{Username: creds.Username, Password: "<registry token>", CacheFor: 55 * time.Minute},
		ok:   true,
	}
}

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

// serveFake runs one request against p and returns stdout.
func serveFake(t *testing.T, p Provider, request string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Serve(context.Background(), p, strings.NewReader(request), &out)
	return out.String(), err
}

func TestFakeProviderEveryVersion(t *testing.T) {
	t.Parallel()
	for _, version := range SupportedAPIVersions {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			setVersion := strings.NewReplacer(`"`+APIVersion+`"`, `"`+version+`"`)
			p := served()
			out, err := serveFake(t, p, setVersion.Replace(golden(t, "request-node.json")))
			require.NoError(t, err)
			assert.JSONEq(t, setVersion.Replace(golden(t, "response.json")), out, "the response echoes the request's apiVersion")
			assert.True(t, strings.HasSuffix(out, "}\n") && strings.Count(out, "\n") == 1, "exactly one JSON line")
			assert.Equal(t, []creds.Pull{{Registry: "cgr.dev"}}, p.pulls, "node mode: the registry alone, for the node's own token")
		})
	}
}

func TestFakeProviderNotServed(t *testing.T) {
	t.Parallel()
	p := &fakeProvider{}
	out, err := serveFake(t, p, strings.Replace(golden(t, "request-node.json"), "cgr.dev/", "ghcr.io/", 1))
	require.NoError(t, err)
	assert.JSONEq(t, golden(t, "response-not-served.json"), out, "no auth and no cacheDuration")
	assert.Equal(t, []creds.Pull{{Registry: "ghcr.io"}}, p.pulls)
}

// The kubelet caches under the image's registry host, port included, for
// exactly as long as the provider says, in a Go duration string.
func TestFakeProviderCacheKeyAndDuration(t *testing.T) {
	t.Parallel()
	for cacheFor, want := range map[time.Duration]string{
		55 * time.Minute: `"55m0s"`,
		time.Hour + 30*time.Minute + 30*time.Second: `"1h30m30s"`,
		0: `"0s"`, // too close to expiry: the kubelet must not cache it
	} {
		p := served()
		p.cred.CacheFor = cacheFor
		out, err := serveFake(t, p, strings.Replace(golden(t, "request-node.json"), "cgr.dev/", "127.0.0.1:5000/", 1))
		require.NoError(t, err)
		assert.Contains(t, out, `"cacheKeyType":"Registry","cacheDuration":`+want+`,`)
		assert.Contains(t, out, `"auth":{"127.0.0.1:5000":{"username":"_token","password":"\u003cregistry token\u003e"}}`)
		assert.Equal(t, "127.0.0.1:5000", p.pulls[0].Registry)
	}
}

// Service-account mode hands the provider the pod's token and the
// identity its annotation names, saying where that came from; the
// annotation alone, without the pod's token, is not used.
func TestFakeProviderServiceAccountMode(t *testing.T) {
	t.Parallel()
	request := func(identity string) string {
		return strings.NewReplacer("<the pod's service-account token>", "pod-token", "<identity id>", identity).
			Replace(golden(t, "request-service-account.json"))
	}
	annotation := "the service account's " + IdentityAnnotation + " annotation"
	for name, tc := range map[string]struct {
		request string
		want    creds.Pull
	}{
		"annotated": {request(` identity-a\t`), creds.Pull{Registry: "cgr.dev", ServiceAccountToken: "pod-token", Identity: "identity-a", IdentitySource: annotation}},
		"empty":     {request(""), creds.Pull{Registry: "cgr.dev", ServiceAccountToken: "pod-token"}},
		"no token": {strings.Replace(request("identity-a"), `"serviceAccountToken": "pod-token",`, "", 1),
			creds.Pull{Registry: "cgr.dev"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := served()
			_, err := serveFake(t, p, tc.request)
			require.NoError(t, err)
			assert.Equal(t, []creds.Pull{tc.want}, p.pulls)
		})
	}
}

// RunPlugin bounds the call, and a failure is the provider's message on
// stderr as one line, nothing on stdout, and exit status 1.
func TestFakeProviderRunPlugin(t *testing.T) {
	t.Parallel()
	run := func(p Provider, request string) (code int, stdout, stderr string) {
		var out, errb bytes.Buffer
		code = RunPlugin(p, strings.NewReader(request), &out, &errb)
		return code, out.String(), errb.String()
	}

	p := served()
	code, stdout, stderr := run(p, golden(t, "request-node.json"))
	assert.Equal(t, 0, code)
	assert.JSONEq(t, golden(t, "response.json"), stdout)
	assert.Empty(t, stderr)
	assert.True(t, p.hadDeadline, "the provider runs under a deadline")

	failing := &fakeProvider{err: fmt.Errorf("%w: the STS said no", creds.ErrIdentityRejected)}
	code, stdout, stderr = run(failing, golden(t, "request-node.json"))
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Equal(t, ProviderName+": the STS rejected the exchange: the STS said no\n", stderr)

	// A request the adapter refuses never reaches the provider.
	refused := served()
	code, stdout, stderr = run(refused, `{"apiVersion":"`+APIGroup+`/v2","kind":"CredentialProviderRequest","image":"cgr.dev/x"}`)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.True(t, strings.HasPrefix(stderr, ProviderName+": the CredentialProviderRequest has apiVersion "), stderr)
	assert.Equal(t, 1, strings.Count(stderr, "\n"))
	assert.Empty(t, refused.pulls)
}

// Serve returns the provider's error as it is, so errors.Is still sees
// its kind.
func TestFakeProviderErrorKeepsItsKind(t *testing.T) {
	t.Parallel()
	p := &fakeProvider{err: fmt.Errorf("%w: nothing found", creds.ErrNoAmbientToken)}
	out, err := serveFake(t, p, golden(t, "request-node.json"))
	require.Error(t, err)
	assert.ErrorIs(t, err, creds.ErrNoAmbientToken)
	assert.Empty(t, out)
}
