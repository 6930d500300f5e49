package exchange

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

// The STS these tests talk to is internal/sandbox's: it speaks the real wire
// protocol, verifies ambient tokens for real and plays injected faults.

// world is a sandbox (cluster issuer, STS trusting it through
// sandbox.DefaultIdentity, registry) closed when the test ends, and a real
// projected token of default/puller that the STS accepts.
type world struct {
	*sandbox.Sandbox
	ambient string
}

const pullerSubject = "system:serviceaccount:default:puller"

func newWorld(t *testing.T) *world {
	t.Helper()
	sb, err := sandbox.Start()
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	return &world{Sandbox: sb, ambient: mintAmbient(t, sb.Issuer, "default", "puller")}
}

// mintAmbient mints a projected service-account token for ns/sa.
func mintAmbient(t testing.TB, iss *sandbox.Issuer, ns, sa string, opts ...sandbox.TokenOption) string {
	t.Helper()
	tok, err := iss.MintServiceAccountToken(ns, sa, opts...)
	require.NoError(t, err)
	return tok
}

// issuedClaims is what the tests read of a token the STS issued.
type issuedClaims struct {
	jwt.RegisteredClaims
	Act struct {
		Issuer  string `json:"iss"`
		Subject string `json:"sub"`
	} `json:"act"`
}

// decodeIssued reads a token's claims without verifying it. It returns an
// error rather than failing the test, so goroutines can use it.
func decodeIssued(raw string) (issuedClaims, error) {
	var c issuedClaims
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("not a compact JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

// requireIssued checks that tok is a token sts issued for identity, valid
// for every audience, and that tok.Expiry is the token's own exp claim.
func requireIssued(t *testing.T, sts *sandbox.STS, tok Token, identity string, audience ...string) issuedClaims {
	t.Helper()
	for _, aud := range audience {
		sub, err := sts.VerifyToken(tok.Raw, aud)
		require.NoError(t, err)
		require.Equal(t, identity, sub)
	}
	c, err := decodeIssued(tok.Raw)
	require.NoError(t, err)
	require.NotNil(t, c.ExpiresAt)
	require.True(t, c.ExpiresAt.Equal(tok.Expiry), "expiry %s, exp claim %s", tok.Expiry, c.ExpiresAt.Time)
	return c
}

// tokenJSON is the STS's success body carrying tok, for faults that answer
// 200 with a token of the test's choosing.
func tokenJSON(tok string) string {
	return fmt.Sprintf(`{"token":%q,"refresh_token":"r","expiry":"2000-01-01T00:00:00Z"}`, tok)
}

// answer200 is a 200 fault with body, labelled as JSON like the STS's own.
func answer200(body string) sandbox.Fault {
	return sandbox.Fault{Status: http.StatusOK, Body: body, Header: map[string]string{"Content-Type": "application/json"}}
}

// sleepRecorder stands in for time: it records each wait and returns at once.
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) recorded() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// newTestClient returns a Client with instant, jitter-free retries.
func newTestClient(t *testing.T, issuer string, opts ...Option) (*Client, *sleepRecorder) {
	t.Helper()
	c, err := New(issuer, opts...)
	require.NoError(t, err)
	rec := &sleepRecorder{}
	c.sleep, c.jitter = rec.sleep, func() float64 { return 0 }
	return c, rec
}

var registryReq = Request{Audience: []string{sandbox.RegistryAudience}}

func TestExchangeRequestShape(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c, _ := newTestClient(t, w.STS.URL(), WithUserAgent("test-agent/1.2"))
	before := time.Now().Truncate(time.Second)

	tok, err := c.Exchange(context.Background(), w.ambient, Request{
		Audience:     []string{"cgr.dev", "other.example"},
		Capabilities: []string{"registry.pull"},
	})
	require.NoError(t, err)
	// Without an identity the STS picks the first that matches.
	claims := requireIssued(t, w.STS, tok, sandbox.DefaultIdentity, "cgr.dev", "other.example")
	assert.WithinRange(t, tok.Expiry, before.Add(time.Hour), time.Now().Add(time.Hour))
	// The STS verified the ambient token we sent as the bearer: the issued
	// token names it as the actor.
	assert.Equal(t, w.Issuer.URL(), claims.Act.Issuer)
	assert.Equal(t, pullerSubject, claims.Act.Subject)

	// The STS counts only requests to its /sts/exchange endpoint.
	assert.Equal(t, 1, w.STS.Requests())
	assert.Equal(t, 1, w.STS.Exchanges())
	r := w.STS.LastRequest()
	assert.Equal(t, http.MethodPost, r.Method)
	assert.True(t, r.Bearer)
	assert.Equal(t, "application/x-www-form-urlencoded", r.ContentType)
	assert.Equal(t, "application/json", r.Accept)
	assert.Equal(t, "test-agent/1.2", r.UserAgent)
	assert.Equal(t, url.Values{
		"aud": {"cgr.dev", "other.example"},
		"cap": {"registry.pull"},
	}, r.PostForm, "identity and scopes are omitted when empty")
	assert.Equal(t, r.PostForm, r.Form, "parameters belong in the body, not the query")
	assert.Equal(t, "aud=cgr.dev&aud=other.example&cap=registry.pull", r.Body)
}

func TestExchangeRequestAllFields(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.STS.AddIdentity("abc/def", sandbox.Identity{Issuer: w.Issuer.URL(), SubjectPattern: sandbox.DefaultSubjectPattern})
	c, _ := newTestClient(t, w.STS.URL())
	tok, err := c.Exchange(context.Background(), w.ambient, Request{
		Audience:     []string{"cgr.dev"},
		Identity:     "abc/def",
		Scopes:       []string{"s1", "s2"},
		Capabilities: []string{"c1", "c2"},
	})
	require.NoError(t, err)
	requireIssued(t, w.STS, tok, "abc/def", "cgr.dev")
	r := w.STS.LastRequest()
	assert.Equal(t, url.Values{
		"aud":      {"cgr.dev"},
		"identity": {"abc/def"},
		"scopes":   {"s1", "s2"},
		"cap":      {"c1", "c2"},
	}, r.PostForm)
	assert.Equal(t, "docker-credential-cgr/dev", r.UserAgent)
}

func TestExchangeEmptySubjectToken(t *testing.T) {
	t.Parallel()
	sts := newFakeSTS(t)
	c, _ := sts.client(t)
	_, err := c.Exchange(context.Background(), "", registryReq)
	require.Error(t, err)
	_, err = c.Exchange(context.Background(), "header.payload.signature-secret\n", registryReq)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "control character")
	assert.False(t, strings.Contains(err.Error(), "signature-secret"), "leaked")
	// A token read with its trailing newline.
	ambient := mintJWT(t, jwt.MapClaims{"sub": "workload", "exp": time.Now().Add(time.Hour).Unix()})
	_, err = c.Exchange(context.Background(), ambient+"\n", registryReq)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "trailing newline")
	assert.False(t, strings.Contains(err.Error(), ambient), "leaked")
	assert.Zero(t, sts.requests())
}

// prefixRouter records the path of each request and strips prefix before
// sending it on, like a path-routing reverse proxy in front of the STS: the
// sandbox STS, like the real one, serves /sts/exchange at its root only.
type prefixRouter struct {
	prefix string
	mu     sync.Mutex
	paths  []string
}

func (p *prefixRouter) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.paths = append(p.paths, r.URL.Path)
	p.mu.Unlock()
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = strings.TrimPrefix(r.URL.Path, p.prefix), ""
	return http.DefaultTransport.RoundTrip(out)
}

func (p *prefixRouter) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.paths...)
}

func TestIssuerPathJoining(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, tc := range []struct {
		suffix, wantPath, wantIssuer string
	}{
		{"", "/sts/exchange", ""},
		{"/", "/sts/exchange", ""},
		{"/prefix", "/prefix/sts/exchange", "/prefix"},
		{"/prefix/", "/prefix/sts/exchange", "/prefix"},
		{"/a/b/", "/a/b/sts/exchange", "/a/b"},
	} {
		t.Run(tc.suffix, func(t *testing.T) {
			rt := &prefixRouter{prefix: tc.wantIssuer}
			c, _ := newTestClient(t, w.STS.URL()+tc.suffix, WithHTTPClient(&http.Client{Transport: rt}))
			assert.Equal(t, w.STS.URL()+tc.wantIssuer, c.Issuer())
			before := w.STS.Requests()
			tok, err := c.Exchange(context.Background(), w.ambient, registryReq)
			require.NoError(t, err)
			requireIssued(t, w.STS, tok, sandbox.DefaultIdentity, sandbox.RegistryAudience)
			assert.Equal(t, []string{tc.wantPath}, rt.seen())
			assert.Equal(t, 1, w.STS.Requests()-before)
		})
	}
}

func TestNewIssuerValidation(t *testing.T) {
	t.Parallel()
	for _, issuer := range []string{
		"https://issuer.enforce.dev",
		"https://issuer.enforce.dev/",
		"https://sts.example.com:8443/prefix",
		"http://127.0.0.1",
		"http://127.0.0.1:8080",
		"http://127.9.8.7:1",
		"http://localhost",
		"http://LocalHost:5000/x",
		"http://[::1]",
		"http://[::1]:8080",
	} {
		t.Run("accept "+issuer, func(t *testing.T) {
			_, err := New(issuer)
			assert.NoError(t, err)
		})
	}

	c, err := New("")
	require.NoError(t, err)
	assert.Equal(t, DefaultIssuer, c.Issuer(), "empty issuer means the default")

	for _, tc := range []struct{ issuer, want string }{
		{"http://issuer.enforce.dev", "only allowed for loopback"},
		{"http://10.0.0.1", "only allowed for loopback"},
		{"http://localhost.example.com", "only allowed for loopback"},
		{"http://[::2]", "only allowed for loopback"},
		{"ftp://issuer.enforce.dev", "https://"},
		{"issuer.enforce.dev", "absolute URL"},
		{"/sts", "absolute URL"},
		{"https://", "absolute URL"},
		{"https:issuer.enforce.dev", "absolute URL"},
		{"https://issuer.enforce.dev?x=y", "query or fragment"},
		{"https://issuer.enforce.dev/?", "query or fragment"},
		{"https://issuer.enforce.dev#frag", "query or fragment"},
		{"https://%zz", "not a URL"},
	} {
		t.Run("reject "+tc.issuer, func(t *testing.T) {
			_, err := New(tc.issuer)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "https://", "the message names the fix")
			assert.NotContains(t, err.Error(), "CHAINGUARD_", "the caller names its settings")
		})
	}

	_, err = New("https://user:hunter2@issuer.enforce.dev")
	require.Error(t, err)
	assert.False(t, strings.Contains(err.Error(), "hunter2"), "leaked")
}

func TestNewOptionValidation(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]Option{
		"zero attempts":    WithMaxAttempts(0),
		"negative base":    WithBackoff(-time.Second, time.Second),
		"base above max":   WithBackoff(2*time.Second, time.Second),
		"negative RA cap":  WithRetryAfterCap(-1),
		"negative attempt": WithMaxAttempts(-3),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(DefaultIssuer, opt)
			assert.Error(t, err)
		})
	}
	// nil values keep the defaults rather than panicking later.
	_, err := New(DefaultIssuer, WithHTTPClient(nil))
	assert.NoError(t, err)
}

func TestRetryTransientThenSuccess(t *testing.T) {
	t.Parallel()
	sts := newFakeSTS(t, rpc(http.StatusServiceUnavailable, 14, "try later"), bare(http.StatusServiceUnavailable))
	c, rec := sts.client(t)

	tok, err := c.Exchange(context.Background(), "subject", registryReq)
	require.NoError(t, err)
	assert.Equal(t, sts.token, tok.Raw)
	assert.Equal(t, 3, sts.requests())
	// Equal jitter with jitter 0 waits half the backoff: 250ms/2, 500ms/2.
	assert.Equal(t, []time.Duration{125 * time.Millisecond, 250 * time.Millisecond}, rec.recorded())
}

func TestRetriesEachTransientStatus(t *testing.T) {
	t.Parallel()
	for _, code := range []int{429, 502, 503, 504} {
		for _, noBody := range []bool{false, true} {
			t.Run(fmt.Sprint(code, " empty body ", noBody), func(t *testing.T) {
				t.Parallel()
				sts := newFakeSTS(t, statusAnswer(code, noBody))
				c, rec := sts.client(t)
				tok, err := c.Exchange(context.Background(), "subject", registryReq)
				require.NoError(t, err)
				assert.Equal(t, sts.token, tok.Raw)
				assert.Equal(t, 2, sts.requests())
				assert.Len(t, rec.recorded(), 1)
			})
		}
	}
}

func TestBackoffGrowthAndJitter(t *testing.T) {
	t.Parallel()
	c, err := New(DefaultIssuer, WithBackoff(100*time.Millisecond, time.Second))
	require.NoError(t, err)
	c.jitter = func() float64 { return 0.5 }
	var got []time.Duration
	for attempt := 1; attempt <= 6; attempt++ {
		got = append(got, c.wait(attempt, 0))
	}
	// backoff 100,200,400,800,1000,1000ms; equal jitter at 0.5 gives 3/4 of it.
	assert.Equal(t, []time.Duration{75, 150, 300, 600, 750, 750}, scale(got, time.Millisecond))

	// Out-of-range jitter is clamped, never negative or above the backoff.
	for _, j := range []float64{-1, 1, 7} {
		c.jitter = func() float64 { return j }
		w := c.wait(1, 0)
		assert.True(t, w >= 50*time.Millisecond && w <= 100*time.Millisecond, "jitter %v gave %s", j, w)
	}

	// Huge attempt counts do not overflow.
	c.jitter = func() float64 { return 0.999 }
	assert.LessOrEqual(t, c.wait(1000, 0), time.Second)
}

func scale(ds []time.Duration, unit time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d / unit
	}
	return out
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	sts := newFakeSTS(t, canned{status: http.StatusTooManyRequests, body: "slow down", header: map[string]string{"Retry-After": "2"}})
	c, rec := sts.client(t)
	tok, err := c.Exchange(context.Background(), "subject", registryReq)
	require.NoError(t, err)
	assert.Equal(t, sts.token, tok.Raw)
	waits := rec.recorded()
	require.Len(t, waits, 1)
	assert.GreaterOrEqual(t, waits[0], 2*time.Second)
	assert.Equal(t, 2, sts.requests())
}

func TestRetryAfterCapped(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts []Option
		want time.Duration
	}{
		"default cap": {nil, 10 * time.Second},
		"custom cap":  {[]Option{WithRetryAfterCap(3 * time.Second)}, 3 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			huge := canned{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "99999999999999999999999"}}
			sts := newFakeSTS(t, huge, huge, huge)
			c, rec := sts.client(t, tc.opts...)
			_, err := c.Exchange(context.Background(), "subject", registryReq)
			var se *StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, http.StatusTooManyRequests, se.HTTPStatus)
			assert.Positive(t, se.RetryAfter)
			assert.Equal(t, []time.Duration{tc.want, tc.want}, rec.recorded())
			assert.Equal(t, 3, sts.requests())
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-4":                            0,
		"7":                             7 * time.Second,
		" 7 ":                           7 * time.Second,
		"soon":                          0,
		"1.5":                           0,
		"99999999999999999999":          maxDuration,
		"Fri, 02 Jan 2026 03:04:35 GMT": 30 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0,
	} {
		assert.Equal(t, want, parseRetryAfter(v, now), "Retry-After %q", v)
	}
}

func TestTransientExhausted(t *testing.T) {
	t.Parallel()
	down := canned{status: http.StatusServiceUnavailable, body: "upstream down"}
	// Exactly three: a fourth attempt would be answered with a token.
	sts := newFakeSTS(t, down, down, down)
	c, rec := sts.client(t)
	_, err := c.Exchange(context.Background(), "subject", registryReq)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.True(t, se.Temporary())
	assert.Equal(t, http.StatusServiceUnavailable, se.HTTPStatus)
	assert.Equal(t, "upstream down", se.Message)
	assert.Equal(t, 3, sts.requests())
	assert.Len(t, rec.recorded(), 2)
}

func TestMaxAttemptsOption(t *testing.T) {
	t.Parallel()
	// As many faults as attempts: one more attempt would get a token.
	for _, attempts := range []int{5, 1} {
		t.Run(fmt.Sprint(attempts), func(t *testing.T) {
			t.Parallel()
			var script []canned
			for range attempts {
				script = append(script, bare(http.StatusBadGateway))
			}
			sts := newFakeSTS(t, script...)
			c, rec := sts.client(t, WithMaxAttempts(attempts))
			_, err := c.Exchange(context.Background(), "subject", registryReq)
			require.Error(t, err)
			assert.Equal(t, attempts, sts.requests())
			assert.Len(t, rec.recorded(), attempts-1)
		})
	}
}

func TestPermissionDeniedNotRetried(t *testing.T) {
	t.Parallel()
	// A real refusal: the ambient token's subject may not assume "deployer".
	w := newWorld(t)
	w.STS.AddIdentity("deployer", sandbox.Identity{Issuer: w.Issuer.URL(), SubjectPattern: "system:serviceaccount:prod:deployer"})
	c, rec := newTestClient(t, w.STS.URL())
	_, err := c.Exchange(context.Background(), w.ambient, Request{Audience: []string{sandbox.RegistryAudience}, Identity: "deployer"})
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusForbidden, se.HTTPStatus)
	assert.Equal(t, 7, se.Code)
	assert.Contains(t, se.Message, "may not assume identity")
	assert.Contains(t, se.Message, pullerSubject)
	assert.Contains(t, se.Message, `"deployer"`)
	assert.False(t, se.Temporary())
	assert.Equal(t, 1, w.STS.Requests())
	assert.Empty(t, rec.recorded())
	assert.Equal(t, "STS "+w.STS.URL()+"/sts/exchange answered 403 Forbidden (PermissionDenied): "+logsafe.Quote(se.Message, maxMessage), err.Error())
	assert.False(t, se.NotSTS())
}

func TestNonRetryableStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		answer   canned
		wantCode int
		wantMsg  string
		wantText string
	}{
		{"404 grpc", rpc(404, 5, `identity "abc" not found`), 5, `identity "abc" not found`, "404 Not Found (NotFound)"},
		{"404 plain", canned{status: 404, body: "404 page not found\n"}, 0, "404 page not found", `404 Not Found: "404 page not found"`},
		{"401 grpc", rpc(401, 16, "token expired"), 16, "token expired", "401 Unauthorized (Unauthenticated)"},
		{"400 empty", bare(400), 0, "Bad Request", "400 Bad Request"},
		{"500 grpc empty message", rpc(500, 13, ""), 13, "Internal Server Error", "(Internal)"},
		{"201 empty", bare(201), 0, "Created", "201 Created"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sts := newFakeSTS(t, tc.answer)
			c, rec := sts.client(t)
			_, err := c.Exchange(context.Background(), "subject", registryReq)
			var se *StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.answer.status, se.HTTPStatus)
			assert.Equal(t, tc.wantCode, se.Code)
			assert.Equal(t, tc.wantMsg, se.Message)
			assert.Contains(t, se.Error(), tc.wantText)
			assert.Equal(t, 1, sts.requests())
			assert.Empty(t, rec.recorded())
		})
	}
}

// TestSTSRejectionsNotRetried covers the refusals the sandbox STS makes on
// its own, in its own words, as the real STS would.
func TestSTSRejectionsNotRetried(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, tc := range []struct {
		name     string
		subject  string
		req      Request
		status   int
		wantCode int
		msgHas   string
	}{
		{"unknown identity", w.ambient, Request{Audience: []string{sandbox.RegistryAudience}, Identity: "abc"}, 404, 5, "identity abc not found"},
		{"no audience", w.ambient, Request{}, 400, 3, "aud is required"},
		{"expired ambient token", mintAmbient(t, w.Issuer, "default", "puller", sandbox.WithIssuedAt(time.Now().Add(-2*time.Hour))), registryReq, 401, 16, "token expired at"},
		{"ambient token for another audience", mintAmbient(t, w.Issuer, "default", "puller", sandbox.WithAudience("sts.amazonaws.com")), registryReq, 401, 16, "sts.amazonaws.com"},
		{"not a JWT", "not-a-jwt", registryReq, 401, 16, "not a valid JWT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.STS.Requests()
			c, rec := newTestClient(t, w.STS.URL())
			_, err := c.Exchange(context.Background(), tc.subject, tc.req)
			var se *StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.status, se.HTTPStatus)
			assert.Equal(t, tc.wantCode, se.Code)
			assert.Contains(t, se.Message, tc.msgHas)
			assert.False(t, se.Temporary())
			assert.False(t, strings.Contains(err.Error(), tc.subject), "leaked")
			assert.Equal(t, 1, w.STS.Requests()-before)
			assert.Empty(t, rec.recorded())
		})
	}
	assert.Zero(t, w.STS.Exchanges())
}

func TestInvalidSuccessBodies(t *testing.T) {
	t.Parallel()
	noExp := mintJWT(t, jwt.MapClaims{"sub": "x", "aud": "cgr.dev"})
	huge := `{"token":"` + strings.Repeat("a", maxBody) + `"}`
	for name, body := range map[string]string{
		"empty":            "",
		"not JSON":         "<html>hello</html>",
		"JSON array":       `["token"]`,
		"no token":         `{"refresh_token":"r","expiry":"x"}`,
		"null token":       `{"token":null}`,
		"token not string": `{"token":12345}`,
		"empty token":      `{"token":""}`,
		"token not a JWT":  `{"token":"not-a-jwt"}`,
		"JWT without exp":  fmt.Sprintf(`{"token":%q}`, noExp),
		"over the cap":     huge,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sts := newFakeSTS(t, canned{status: http.StatusOK, body: body, header: map[string]string{"Content-Type": "text/plain"}})
			c, rec := sts.client(t)
			tok, err := c.Exchange(context.Background(), "subject", registryReq)
			require.ErrorIs(t, err, ErrInvalidResponse)
			assert.Empty(t, tok.Raw)
			assert.Equal(t, 1, sts.requests(), "a bad 200 is not retried")
			assert.Empty(t, rec.recorded())
			if len(body) > 0 {
				assert.False(t, strings.Contains(err.Error(), body), "leaked")
			}
			assert.False(t, strings.Contains(err.Error(), noExp), "leaked")
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// The target would accept the ambient token: following the redirect
	// would have worked, which is exactly what must not happen.
	target, err := sandbox.NewSTS()
	require.NoError(t, err)
	t.Cleanup(target.Close)
	target.AddIdentity(sandbox.DefaultIdentity, sandbox.Identity{Issuer: w.Issuer.URL(), SubjectPattern: sandbox.DefaultSubjectPattern})
	w.STS.InjectFaults(sandbox.Fault{
		Status: http.StatusFound,
		Header: map[string]string{"Location": target.URL() + "/sts/exchange"},
	})

	// A caller's client that would follow redirects must not change that,
	// and must not itself be modified.
	followed := false
	callerRedirect := func(*http.Request, []*http.Request) error { followed = true; return nil }
	hc := &http.Client{CheckRedirect: callerRedirect}
	c, rec := newTestClient(t, w.STS.URL(), WithHTTPClient(hc))

	_, err = c.Exchange(context.Background(), w.ambient, registryReq)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusFound, se.HTTPStatus)
	assert.Equal(t, target.URL()+"/sts/exchange", se.Location)
	assert.Contains(t, err.Error(), `a redirect to "`+target.URL()+`/sts/exchange" that was not followed`)
	assert.True(t, se.NotSTS(), "a redirect means the issuer URL is not the STS's")
	assert.False(t, se.Temporary())
	requireOneLine(t, err.Error())
	assert.Zero(t, target.Requests(), "the target never saw a request, so never the bearer token")
	assert.False(t, followed)
	assert.Equal(t, 1, w.STS.Requests())
	assert.Empty(t, rec.recorded())
	require.NotNil(t, hc.CheckRedirect, "the caller's client is not mutated")
	assert.NoError(t, hc.CheckRedirect(nil, nil))
	assert.True(t, followed, "the caller's redirect policy is still its own")
}

// countingTransport counts round trips, for servers that never answer.
type countingTransport struct {
	n  atomic.Int32
	rt http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	issuer := closedURL(t)
	rt := &countingTransport{rt: http.DefaultTransport}
	c, rec := newTestClient(t, issuer, WithHTTPClient(&http.Client{Transport: rt}))

	_, err := c.Exchange(context.Background(), "subject", registryReq)
	var ue *UnreachableError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, issuer+"/sts/exchange", ue.URL)
	assert.Equal(t, int32(3), rt.n.Load())
	assert.Len(t, rec.recorded(), 2)
	msg := err.Error()
	assert.True(t, strings.HasPrefix(msg, "cannot reach the STS at "+issuer+"/sts/exchange: "), msg)
	assert.Contains(t, msg, "refused")
	assert.True(t, strings.HasSuffix(msg, ": "+ue.Err.Error()), "ends with the network error: %s", msg)
	assert.NotContains(t, msg, "CHAINGUARD_", "the caller names its settings")
	assert.NotContains(t, msg, `Post "`, "the url.Error wrapper is dropped to avoid repeating the URL")
}

func TestDeadlineShorterThanBackoff(t *testing.T) {
	t.Parallel()
	sts := newFakeSTS(t, bare(http.StatusServiceUnavailable))
	// Real sleeping: the point is that it is never started.
	c, err := New(fakeIssuer, WithHTTPClient(&http.Client{Transport: sts}), WithBackoff(5*time.Second, 5*time.Second))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()

	start := time.Now()
	_, err = c.Exchange(ctx, "subject", registryReq)
	elapsed := time.Since(start)

	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusServiceUnavailable, se.HTTPStatus)
	assert.Less(t, elapsed, time.Second, "returned promptly instead of sleeping past the deadline")
	assert.Equal(t, 1, sts.requests())
}

func TestCancelDuringWait(t *testing.T) {
	t.Parallel()
	sts := newFakeSTS(t, bare(http.StatusServiceUnavailable))
	c, err := New(fakeIssuer, WithHTTPClient(&http.Client{Transport: sts}), WithBackoff(time.Minute, time.Minute))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	_, err = c.Exchange(ctx, "subject", registryReq)
	assert.Less(t, time.Since(start), 10*time.Second)
	require.ErrorIs(t, err, context.Canceled)
	var se *StatusError
	require.ErrorAs(t, err, &se, "the last attempt's error is kept")
	assert.Contains(t, err.Error(), "503")
	assert.Equal(t, 1, sts.requests())
}

func TestDeadlineDuringRequest(t *testing.T) {
	t.Parallel()
	// The STS holds the request until the client goes away.
	var requests atomic.Int32
	hang := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		requests.Add(1)
		_ = r.Body.Close()
		<-r.Context().Done()
		return nil, r.Context().Err()
	})
	c, rec := newTestClient(t, fakeIssuer, WithHTTPClient(&http.Client{Transport: hang}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()

	_, err := c.Exchange(ctx, "subject", registryReq)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var ue *UnreachableError
	require.ErrorAs(t, err, &ue)
	assert.Empty(t, rec.recorded(), "no retry once the caller's context is done")
	assert.Contains(t, err.Error(), "cannot reach the STS at "+fakeIssuer)
	assert.Equal(t, int32(1), requests.Load())
}

func TestContextAlreadyDone(t *testing.T) {
	t.Parallel()
	sts := newFakeSTS(t)
	c, _ := sts.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Exchange(ctx, "subject", registryReq)
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, sts.requests())
}

func TestConcurrentExchanges(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	const callers, faults = 20, 10
	// Every caller presents its own service account's token, so a mix-up
	// between concurrent requests would show in the issued tokens.
	subjects := make([]string, callers)
	for i := range subjects {
		subjects[i] = mintAmbient(t, w.Issuer, "ns", fmt.Sprintf("sa-%d", i))
	}
	// Transient faults go to whichever requests come first; with one more
	// attempt than there are faults, no caller can run out of attempts.
	for i := range faults {
		w.STS.InjectFaults(sandbox.Fault{Status: []int{503, 429, 502}[i%3], NoBody: i%2 == 0})
	}
	c, _ := newTestClient(t, w.STS.URL(), WithMaxAttempts(faults+1))
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			tok, err := c.Exchange(context.Background(), subjects[i], registryReq)
			if !assert.NoError(t, err) {
				return
			}
			sub, err := w.STS.VerifyToken(tok.Raw, sandbox.RegistryAudience)
			assert.NoError(t, err)
			assert.Equal(t, sandbox.DefaultIdentity, sub)
			claims, err := decodeIssued(tok.Raw)
			assert.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("system:serviceaccount:ns:sa-%d", i), claims.Act.Subject)
			assert.True(t, claims.ExpiresAt != nil && claims.ExpiresAt.Equal(tok.Expiry))
		})
	}
	wg.Wait()
	assert.Equal(t, callers+faults, w.STS.Requests())
	assert.Equal(t, callers, w.STS.Exchanges())
}

// TestSecretsNeverLeak drives every error path with answers that echo the
// subject token wherever they can, and checks neither token appears in any
// error text or Token formatting.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	subject := w.ambient
	c, _ := newTestClient(t, w.STS.URL())
	good, err := c.Exchange(context.Background(), subject, registryReq)
	require.NoError(t, err)
	issued := good.Raw // a real registry token from the STS
	issuedNoExp := mintJWT(t, jwt.MapClaims{"sub": "registry-secret-subject-no-exp-claim"})
	const notJWT = "issued-registry-token-that-is-not-a-jwt-0123456789"
	sig := subject[strings.LastIndex(subject, ".")+1:]
	payload := strings.Split(subject, ".")[1]
	parts := strings.Split(subject, ".")

	status := func(code int, body string) sandbox.Fault { return sandbox.Fault{Status: code, Body: body} }
	busy := status(503, `{"code":14,"message":"busy `+subject+`"}`)
	cases := map[string][]sandbox.Fault{
		"403 grpc echo":        {{Status: 403, Code: 7, Message: "token " + subject + " does not match"}},
		"401 grpc echo":        {status(401, `{"code":16,"message":"bad token: `+subject+`"}`)},
		"400 plain echo":       {status(400, "bad request for "+subject)},
		"404 html echo":        {status(404, "<html><head><title>no "+subject+" here</title></head></html>")},
		"500 ctrl-char splice": {status(500, parts[0]+"."+parts[1]+"\x00."+sig)},
		"500 signature only":   {status(500, "sig="+sig)},
		"500 payload only":     {status(500, "claims="+payload)},
		"503 echo x3":          {busy, busy, busy},
		"302 echo in location": {{Status: 302, Header: map[string]string{"Location": "https://elsewhere.example/?t=" + subject}}},
		"200 not a JWT":        {answer200(tokenJSON(notJWT))},
		"200 JWT no exp":       {answer200(tokenJSON(issuedNoExp))},
		"200 token in junk":    {answer200(`{"token":"` + issued + `"`)},
		"200 ctype echo":       {{Status: 200, Body: "nope", Header: map[string]string{"Content-Type": "text/plain; t=" + subject}}},
	}
	secrets := map[string]string{"subject token": subject, "its signature": sig, "its payload": payload,
		"issued token": issued, "issued token without exp": issuedNoExp, "issued non-JWT": notJWT}
	// check fails naming which secret leaked, never showing it, and logs the
	// error only once it is known to be clean.
	check := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		clean := true
		for _, text := range []string{err.Error(), fmt.Sprintf("%v %+v %#v %s %q", err, err, err, err, err)} {
			for name, secret := range secrets {
				if strings.Contains(text, secret) {
					clean = false
					assert.Fail(t, "leaked", "the error text contains the %s", name)
				}
			}
		}
		if clean {
			t.Log(err)
			requireOneLine(t, err.Error())
		}
	}
	for name, faults := range cases {
		t.Run(name, func(t *testing.T) {
			w.STS.InjectFaults(faults...)
			before := w.STS.Requests()
			c, _ := newTestClient(t, w.STS.URL())
			_, err := c.Exchange(context.Background(), subject, registryReq)
			check(t, err)
			assert.Equal(t, len(faults), w.STS.Requests()-before, "every fault was played")
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		c, _ := newTestClient(t, closedURL(t))
		_, err := c.Exchange(context.Background(), subject, registryReq)
		check(t, err)
	})
	t.Run("deadline", func(t *testing.T) {
		w.STS.InjectFaults(sandbox.Fault{Delay: time.Minute})
		c, _ := newTestClient(t, w.STS.URL())
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Exchange(ctx, subject, registryReq)
		check(t, err)
	})
	t.Run("ParseToken", func(t *testing.T) {
		for _, raw := range []string{notJWT, issuedNoExp, issued + "x.y", strings.Replace(issued, ".", ".!", 1)} {
			_, err := ParseToken(raw)
			check(t, err)
		}
	})
	t.Run("Token formatting", func(t *testing.T) {
		tok, err := ParseToken(issued)
		require.NoError(t, err)
		for _, v := range []any{tok, &tok, []Token{tok}, struct{ T Token }{tok}} {
			s := fmt.Sprintf("%v %+v %#v %s %q %d %x %X", v, v, v, v, v, v, v, v)
			assert.False(t, strings.Contains(s, issued), "leaked: formatting shows the issued token")
			assert.False(t, strings.Contains(s, issued[strings.LastIndex(issued, ".")+1:]), "leaked: formatting shows the issued token's signature")
			assert.True(t, strings.Contains(s, "exchange.Token{Expiry: "), "formatting shows the expiry")
		}
	})
}

// net/http quotes a Location it cannot parse, user info and all; the
// message must not carry it on.
func TestUnparsableRedirectShowsNoUserInfo(t *testing.T) {
	t.Parallel()
	sts := newFakeSTS(t, canned{status: http.StatusFound, header: map[string]string{"Location": "https://u:pw-secret@login.example/%zz"}})
	c, _ := sts.client(t, WithMaxAttempts(1))
	_, err := c.Exchange(context.Background(), mintJWT(t, jwt.MapClaims{"sub": "w", "exp": time.Now().Add(time.Hour).Unix()}), registryReq)
	require.Error(t, err)
	var ue *UnreachableError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "a redirect whose Location header is not a URL")
	assert.NotContains(t, err.Error(), "pw-secret")
}

// TestNoRedirectsLeavesTheCallersClient: the copy refuses redirects, the
// client it was made from keeps its own policy, and nil is a default
// client.
func TestNoRedirectsLeavesTheCallersClient(t *testing.T) {
	t.Parallel()
	own := &http.Client{Timeout: time.Minute}
	c := NoRedirects(own)
	assert.Nil(t, own.CheckRedirect)
	assert.Equal(t, time.Minute, c.Timeout)
	for _, c := range []*http.Client{c, NoRedirects(nil)} {
		require.NotNil(t, c.CheckRedirect)
		assert.ErrorIs(t, c.CheckRedirect(nil, nil), http.ErrUseLastResponse)
	}
}
