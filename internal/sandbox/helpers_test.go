package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// start starts a whole sandbox that is closed when the test ends.
func start(t *testing.T) *Sandbox {
	t.Helper()
	sb, err := Start()
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	return sb
}

// decodeJWT splits a compact JWT without verifying it.
func decodeJWT(t *testing.T, raw string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	require.Len(t, parts, 3, "not a compact JWT")
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, dst))
	}
	return header, claims
}

// response is an HTTP answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, resp.Header, body}
}

// postExchange sends a form-encoded exchange request, as the product does.
func postExchange(t *testing.T, sts *STS, bearer string, form url.Values) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, sts.URL()+"/sts/exchange", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "sandbox-test/1.0")
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return do(t, req)
}

// registryForm is the usual exchange request for DefaultIdentity.
func registryForm() url.Values {
	return url.Values{"aud": {RegistryAudience}, "identity": {DefaultIdentity}}
}

// rpc decodes a grpc-gateway error body, checking its shape.
func (r response) rpc(t *testing.T) grpcStatus {
	t.Helper()
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	var raw map[string]any
	require.NoError(t, json.Unmarshal(r.body, &raw), "body %s", r.body)
	require.ElementsMatch(t, []string{"code", "message", "details"}, keys(raw))
	require.Equal(t, []any{}, raw["details"])
	var s grpcStatus
	require.NoError(t, json.Unmarshal(r.body, &s))
	return s
}

// token decodes a successful exchange answer.
func (r response) token(t *testing.T) exchangeResponse {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var e exchangeResponse
	require.NoError(t, json.Unmarshal(r.body, &e))
	require.NotEmpty(t, e.Token)
	return e
}

// exchangeSA mints a token for ns/sa and exchanges it for a registry token.
func exchangeSA(t *testing.T, sb *Sandbox, ns, sa string) string {
	t.Helper()
	amb, err := sb.Issuer.MintServiceAccountToken(ns, sa)
	require.NoError(t, err)
	return postExchange(t, sb.STS, amb, registryForm()).token(t).Token
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
