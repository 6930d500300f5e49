package exchange

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mintJWT signs claims with a test key; ParseToken never verifies, so the
// key does not matter.
func mintJWT(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("test-key"))
	require.NoError(t, err)
	return s
}

// subjectJWT is a realistic ambient token: long, with a recognisable
// signature, so leak checks have something to look for.
func subjectJWT(t testing.TB) string {
	return mintJWT(t, jwt.MapClaims{
		"iss": "https://kubernetes.default.svc",
		"sub": "system:serviceaccount:default:puller",
		"aud": "issuer.enforce.dev",
		"exp": time.Now().Add(time.Hour).Unix(),
	})
}

func registryJWT(t testing.TB, exp time.Time) string {
	return mintJWT(t, jwt.MapClaims{
		"iss": "https://issuer.enforce.dev",
		"sub": "identity-1234",
		"aud": "cgr.dev",
		"exp": exp.Unix(),
	})
}

// recorded is what the fake STS saw of one request.
type recorded struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   string
}

// fakeSTS answers request n with handlers[n], repeating the last one.
type fakeSTS struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []recorded
	handlers []http.HandlerFunc
}

func newFakeSTS(t *testing.T, handlers ...http.HandlerFunc) *fakeSTS {
	t.Helper()
	f := &fakeSTS{handlers: handlers}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
		h := f.handlers[min(n, len(f.handlers)-1)]
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSTS) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func tokenBody(tok string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token":%q,"refresh_token":"r","expiry":"2000-01-01T00:00:00Z"}`, tok)
	}
}

func status(code int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
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
	rec := &sleepRecorder{}
	base := []Option{WithSleep(rec.sleep), WithJitter(func() float64 { return 0 })}
	c, err := New(issuer, append(base, opts...)...)
	require.NoError(t, err)
	return c, rec
}

var registryReq = Request{Audience: []string{"cgr.dev"}}

func TestExchangeRequestShape(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	issued := registryJWT(t, exp)
	subject := subjectJWT(t)
	sts := newFakeSTS(t, tokenBody(issued))
	c, _ := newTestClient(t, sts.URL, WithUserAgent("test-agent/1.2"))

	tok, err := c.Exchange(context.Background(), subject, Request{
		Audience:     []string{"cgr.dev", "other.example"},
		Capabilities: []string{"registry.pull"},
	})
	require.NoError(t, err)
	assert.Equal(t, issued, tok.Raw)
	assert.True(t, exp.Equal(tok.Expiry), "expiry %s, want %s", tok.Expiry, exp)

	reqs := sts.requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, "/sts/exchange", r.Path)
	assert.Empty(t, r.Query, "parameters belong in the body")
	assert.Equal(t, "Bearer "+subject, r.Header.Get("Authorization"))
	assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
	assert.Equal(t, "application/json", r.Header.Get("Accept"))
	assert.Equal(t, "test-agent/1.2", r.Header.Get("User-Agent"))

	form, err := url.ParseQuery(r.Body)
	require.NoError(t, err)
	assert.Equal(t, url.Values{
		"aud": {"cgr.dev", "other.example"},
		"cap": {"registry.pull"},
	}, form, "identity and scopes are omitted when empty")
	assert.Equal(t, "aud=cgr.dev&aud=other.example&cap=registry.pull", r.Body)
}

func TestExchangeRequestAllFields(t *testing.T) {
	sts := newFakeSTS(t, tokenBody(registryJWT(t, time.Now().Add(time.Hour))))
	c, _ := newTestClient(t, sts.URL)
	_, err := c.Exchange(context.Background(), "subject", Request{
		Audience:     []string{"cgr.dev"},
		Identity:     "abc/def",
		Scopes:       []string{"s1", "s2"},
		Capabilities: []string{"c1", "c2"},
	})
	require.NoError(t, err)
	r := sts.requests()[0]
	form, err := url.ParseQuery(r.Body)
	require.NoError(t, err)
	assert.Equal(t, url.Values{
		"aud":      {"cgr.dev"},
		"identity": {"abc/def"},
		"scopes":   {"s1", "s2"},
		"cap":      {"c1", "c2"},
	}, form)
	assert.Equal(t, "docker-credential-cgr/dev", r.Header.Get("User-Agent"))
}

func TestExchangeEmptySubjectToken(t *testing.T) {
	sts := newFakeSTS(t, tokenBody("unused"))
	c, _ := newTestClient(t, sts.URL)
	_, err := c.Exchange(context.Background(), "", registryReq)
	require.Error(t, err)
	_, err = c.Exchange(context.Background(), "header.payload.signature-secret\n", registryReq)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "control character")
	assert.NotContains(t, err.Error(), "signature-secret")
	assert.Empty(t, sts.requests())
}

func TestIssuerPathJoining(t *testing.T) {
	issued := registryJWT(t, time.Now().Add(time.Hour))
	sts := newFakeSTS(t, tokenBody(issued))
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
			c, _ := newTestClient(t, sts.URL+tc.suffix)
			assert.Equal(t, sts.URL+tc.wantIssuer, c.Issuer())
			_, err := c.Exchange(context.Background(), "subject", registryReq)
			require.NoError(t, err)
			reqs := sts.requests()
			assert.Equal(t, tc.wantPath, reqs[len(reqs)-1].Path)
		})
	}
}

func TestNewIssuerValidation(t *testing.T) {
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
			assert.Contains(t, err.Error(), "CHAINGUARD_ISSUER", "the message names the fix")
		})
	}

	_, err = New("https://user:hunter2@issuer.enforce.dev")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
}

func TestNewOptionValidation(t *testing.T) {
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
	_, err := New(DefaultIssuer, WithHTTPClient(nil), WithJitter(nil), WithSleep(nil))
	assert.NoError(t, err)
}

func TestRetryTransientThenSuccess(t *testing.T) {
	issued := registryJWT(t, time.Now().Add(time.Hour))
	sts := newFakeSTS(t,
		status(http.StatusServiceUnavailable, `{"code":14,"message":"try later","details":[]}`),
		status(http.StatusServiceUnavailable, ""),
		tokenBody(issued))
	c, rec := newTestClient(t, sts.URL)

	tok, err := c.Exchange(context.Background(), "subject", registryReq)
	require.NoError(t, err)
	assert.Equal(t, issued, tok.Raw)
	assert.Len(t, sts.requests(), 3)
	// Equal jitter with jitter 0 waits half the backoff: 250ms/2, 500ms/2.
	assert.Equal(t, []time.Duration{125 * time.Millisecond, 250 * time.Millisecond}, rec.recorded())
}

func TestRetriesEachTransientStatus(t *testing.T) {
	for _, code := range []int{429, 502, 503, 504} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			sts := newFakeSTS(t, status(code, ""), tokenBody(registryJWT(t, time.Now().Add(time.Hour))))
			c, rec := newTestClient(t, sts.URL)
			_, err := c.Exchange(context.Background(), "subject", registryReq)
			require.NoError(t, err)
			assert.Len(t, sts.requests(), 2)
			assert.Len(t, rec.recorded(), 1)
		})
	}
}

func TestBackoffGrowthAndJitter(t *testing.T) {
	c, err := New(DefaultIssuer, WithBackoff(100*time.Millisecond, time.Second), WithJitter(func() float64 { return 0.5 }))
	require.NoError(t, err)
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
	issued := registryJWT(t, time.Now().Add(time.Hour))
	sts := newFakeSTS(t, status(http.StatusTooManyRequests, "slow down", "Retry-After", "2"), tokenBody(issued))
	c, rec := newTestClient(t, sts.URL)
	_, err := c.Exchange(context.Background(), "subject", registryReq)
	require.NoError(t, err)
	waits := rec.recorded()
	require.Len(t, waits, 1)
	assert.GreaterOrEqual(t, waits[0], 2*time.Second)
}

func TestRetryAfterCapped(t *testing.T) {
	for name, tc := range map[string]struct {
		opts []Option
		want time.Duration
	}{
		"default cap": {nil, 10 * time.Second},
		"custom cap":  {[]Option{WithRetryAfterCap(3 * time.Second)}, 3 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			sts := newFakeSTS(t, status(http.StatusTooManyRequests, "", "Retry-After", "99999999999999999999999"))
			c, rec := newTestClient(t, sts.URL, tc.opts...)
			_, err := c.Exchange(context.Background(), "subject", registryReq)
			var se *StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, http.StatusTooManyRequests, se.HTTPStatus)
			assert.Positive(t, se.RetryAfter)
			assert.Equal(t, []time.Duration{tc.want, tc.want}, rec.recorded())
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
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
	sts := newFakeSTS(t, status(http.StatusServiceUnavailable, "upstream down"))
	c, rec := newTestClient(t, sts.URL)
	_, err := c.Exchange(context.Background(), "subject", registryReq)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.True(t, se.Temporary())
	assert.Equal(t, http.StatusServiceUnavailable, se.HTTPStatus)
	assert.Equal(t, "upstream down", se.Message)
	assert.Len(t, sts.requests(), 3)
	assert.Len(t, rec.recorded(), 2)
}

func TestMaxAttemptsOption(t *testing.T) {
	sts := newFakeSTS(t, status(http.StatusBadGateway, ""))
	c, rec := newTestClient(t, sts.URL, WithMaxAttempts(5))
	_, err := c.Exchange(context.Background(), "subject", registryReq)
	require.Error(t, err)
	assert.Len(t, sts.requests(), 5)
	assert.Len(t, rec.recorded(), 4)

	sts = newFakeSTS(t, status(http.StatusBadGateway, ""))
	c, rec = newTestClient(t, sts.URL, WithMaxAttempts(1))
	_, err = c.Exchange(context.Background(), "subject", registryReq)
	require.Error(t, err)
	assert.Len(t, sts.requests(), 1)
	assert.Empty(t, rec.recorded())
}

func TestPermissionDeniedNotRetried(t *testing.T) {
	sts := newFakeSTS(t, status(http.StatusForbidden, `{"code":7,"message":"identity mismatch","details":[]}`,
		"Content-Type", "application/json"))
	c, rec := newTestClient(t, sts.URL)
	_, err := c.Exchange(context.Background(), "subject", registryReq)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusForbidden, se.HTTPStatus)
	assert.Equal(t, 7, se.Code)
	assert.Equal(t, "identity mismatch", se.Message)
	assert.False(t, se.Temporary())
	assert.Len(t, sts.requests(), 1)
	assert.Empty(t, rec.recorded())
	assert.Contains(t, err.Error(), "STS "+sts.URL+"/sts/exchange answered 403 Forbidden (PermissionDenied): identity mismatch")
}

func TestNonRetryableStatuses(t *testing.T) {
	for _, tc := range []struct {
		code     int
		body     string
		wantCode int
		wantMsg  string
		wantText string
	}{
		{404, `{"code":5,"message":"identity \"abc\" not found","details":[]}`, 5, `identity "abc" not found`, "404 Not Found (NotFound)"},
		{404, "404 page not found\n", 0, "404 page not found", "404 Not Found: 404 page not found"},
		{401, `{"code":16,"message":"token expired","details":[]}`, 16, "token expired", "401 Unauthorized (Unauthenticated)"},
		{400, "", 0, "Bad Request", "400 Bad Request"},
		{500, `{"code":13,"message":"","details":[]}`, 13, "Internal Server Error", "(Internal)"},
		{201, "", 0, "Created", "201 Created"},
	} {
		t.Run(fmt.Sprint(tc.code, tc.body), func(t *testing.T) {
			sts := newFakeSTS(t, status(tc.code, tc.body))
			c, _ := newTestClient(t, sts.URL)
			_, err := c.Exchange(context.Background(), "subject", registryReq)
			var se *StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.code, se.HTTPStatus)
			assert.Equal(t, tc.wantCode, se.Code)
			assert.Equal(t, tc.wantMsg, se.Message)
			assert.Contains(t, se.Error(), tc.wantText)
			assert.Len(t, sts.requests(), 1)
		})
	}
}

func TestInvalidSuccessBodies(t *testing.T) {
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
			sts := newFakeSTS(t, status(http.StatusOK, body, "Content-Type", "text/plain"))
			c, rec := newTestClient(t, sts.URL)
			tok, err := c.Exchange(context.Background(), "subject", registryReq)
			require.ErrorIs(t, err, ErrInvalidResponse)
			assert.Empty(t, tok.Raw)
			assert.Len(t, sts.requests(), 1, "a bad 200 is not retried")
			assert.Empty(t, rec.recorded())
			if len(body) > 0 {
				assert.NotContains(t, err.Error(), body)
			}
			assert.NotContains(t, err.Error(), noExp)
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var targetHits atomic.Int32
	var sawAuth atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		if r.Header.Get("Authorization") != "" {
			sawAuth.Store(true)
		}
		tokenBody(registryJWT(t, time.Now().Add(time.Hour)))(w, r)
	}))
	t.Cleanup(target.Close)

	sts := newFakeSTS(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/sts/exchange", http.StatusFound)
	})

	// A caller's client that would follow redirects must not change that,
	// and must not itself be modified.
	followed := false
	callerRedirect := func(*http.Request, []*http.Request) error { followed = true; return nil }
	hc := &http.Client{CheckRedirect: callerRedirect}
	c, rec := newTestClient(t, sts.URL, WithHTTPClient(hc))

	_, err := c.Exchange(context.Background(), "subject", registryReq)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusFound, se.HTTPStatus)
	assert.Contains(t, se.Message, "redirected to "+target.URL+"/sts/exchange")
	assert.Contains(t, se.Message, "CHAINGUARD_ISSUER")
	assert.False(t, se.Temporary())
	assert.Equal(t, int32(0), targetHits.Load())
	assert.False(t, sawAuth.Load())
	assert.False(t, followed)
	assert.Len(t, sts.requests(), 1)
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

func closedServerURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func TestUnreachable(t *testing.T) {
	issuer := closedServerURL(t)
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
	assert.True(t, strings.HasSuffix(msg, "; check CHAINGUARD_ISSUER and the network"), msg)
	assert.NotContains(t, msg, `Post "`, "the url.Error wrapper is dropped to avoid repeating the URL")
}

func TestDeadlineShorterThanBackoff(t *testing.T) {
	sts := newFakeSTS(t, status(http.StatusServiceUnavailable, ""))
	// Real sleeping: the point is that it is never started.
	c, err := New(sts.URL, WithBackoff(5*time.Second, 5*time.Second))
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
	assert.Len(t, sts.requests(), 1)
}

func TestCancelDuringWait(t *testing.T) {
	sts := newFakeSTS(t, status(http.StatusServiceUnavailable, ""))
	c, err := New(sts.URL, WithBackoff(time.Minute, time.Minute))
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
}

func TestDeadlineDuringRequest(t *testing.T) {
	release := make(chan struct{})
	sts := newFakeSTS(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // before sts.Close, which waits for handlers
	c, rec := newTestClient(t, sts.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()

	_, err := c.Exchange(ctx, "subject", registryReq)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var ue *UnreachableError
	require.ErrorAs(t, err, &ue)
	assert.Empty(t, rec.recorded(), "no retry once the caller's context is done")
	assert.Contains(t, err.Error(), "cannot reach the STS at "+sts.URL)
}

func TestContextAlreadyDone(t *testing.T) {
	sts := newFakeSTS(t, tokenBody("unused"))
	c, _ := newTestClient(t, sts.URL)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Exchange(ctx, "subject", registryReq)
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, sts.requests())
}

func TestConcurrentExchanges(t *testing.T) {
	issued := registryJWT(t, time.Now().Add(time.Hour))
	var n atomic.Int32
	sts := newFakeSTS(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			status(http.StatusServiceUnavailable, "")(w, r)
			return
		}
		tokenBody(issued)(w, r)
	})
	c, _ := newTestClient(t, sts.URL, WithMaxAttempts(5))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			tok, err := c.Exchange(context.Background(), "subject", registryReq)
			assert.NoError(t, err)
			assert.Equal(t, issued, tok.Raw)
		})
	}
	wg.Wait()
}

// TestSecretsNeverLeak drives every error path with a server that echoes
// the subject token wherever it can, and checks neither token appears in
// any error text or Token formatting.
func TestSecretsNeverLeak(t *testing.T) {
	subject := subjectJWT(t)
	issued := registryJWT(t, time.Now().Add(time.Hour))
	issuedNoExp := mintJWT(t, jwt.MapClaims{"sub": "registry-secret-subject-no-exp-claim"})
	const notJWT = "issued-registry-token-that-is-not-a-jwt-0123456789"
	sig := subject[strings.LastIndex(subject, ".")+1:]
	payload := strings.Split(subject, ".")[1]

	echo := func(code int, format string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			w.WriteHeader(code)
			fmt.Fprintf(w, format, tok)
		}
	}
	parts := strings.Split(subject, ".")

	cases := map[string]http.HandlerFunc{
		"403 grpc echo":  echo(403, `{"code":7,"message":"token %s does not match","details":[]}`),
		"401 grpc echo":  echo(401, `{"code":16,"message":"bad token: %s"}`),
		"400 plain echo": echo(400, "bad request for %s"),
		"404 html echo":  echo(404, "<html><head><title>no %s here</title></head></html>"),
		"500 ctrl-char splice": func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
			io.WriteString(w, parts[0]+"."+parts[1]+"\x00."+sig)
		},
		"500 signature only": func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500); io.WriteString(w, "sig="+sig) },
		"500 payload only":   func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500); io.WriteString(w, "claims="+payload) },
		"503 echo x3":        echo(503, `{"code":14,"message":"busy %s"}`),
		"302 echo in location": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "https://elsewhere.example/?t="+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			w.WriteHeader(302)
		},
		"200 not a JWT":     tokenBody(notJWT),
		"200 JWT no exp":    tokenBody(issuedNoExp),
		"200 token in junk": status(200, `{"token":"`+issued+`"`),
		"200 ctype echo": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; t="+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			io.WriteString(w, "nope")
		},
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		t.Log(err)
		for _, text := range []string{err.Error(), fmt.Sprintf("%v %+v %#v %s %q", err, err, err, err, err)} {
			for _, secret := range []string{subject, sig, payload, issued, issuedNoExp, notJWT} {
				assert.NotContains(t, text, secret)
			}
		}
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			sts := newFakeSTS(t, h)
			c, _ := newTestClient(t, sts.URL)
			_, err := c.Exchange(context.Background(), subject, registryReq)
			check(t, err)
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		c, _ := newTestClient(t, closedServerURL(t))
		_, err := c.Exchange(context.Background(), subject, registryReq)
		check(t, err)
	})
	t.Run("deadline", func(t *testing.T) {
		release := make(chan struct{})
		sts := newFakeSTS(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		defer close(release)
		c, _ := newTestClient(t, sts.URL)
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
			assert.NotContains(t, s, issued)
			assert.NotContains(t, s, issued[strings.LastIndex(issued, ".")+1:])
			assert.Contains(t, s, "exchange.Token{Expiry: ")
		}
	})
}
