// Package exchange is a client for the Chainguard security token service
// (STS): it trades an ambient OIDC token for a registry token.
//
// It knows HTTP, the STS wire format, retries and the STS's error shapes, and
// nothing about docker, the kubelet, caching or where its settings come
// from; those live in the callers.
package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/internal/tlsroots"
)

// DefaultIssuer is the production Chainguard STS.
const DefaultIssuer = "https://issuer.enforce.dev"

const (
	defaultUserAgent     = "docker-credential-cgr/dev"
	defaultMaxAttempts   = 3
	defaultBackoffBase   = 250 * time.Millisecond
	defaultBackoffMax    = 4 * time.Second
	defaultRetryAfterCap = 10 * time.Second
	// defaultTimeout bounds one attempt when the caller's context has no
	// deadline, so a silent STS cannot hang a docker pull forever.
	defaultTimeout = 30 * time.Second

	// maxBody caps what is read of any answer. A token response is a few
	// KiB; anything near this is not the STS.
	maxBody = 1 << 20
	// maxDrain is how much of an unread body is discarded so the connection
	// can be reused; past that it is cheaper to close it.
	maxDrain = 64 << 10
)

// Request is what to ask the STS for. Empty fields are left out of the form.
type Request struct {
	// Audience is the audience of the token to issue, form key "aud"
	// (repeated); "cgr.dev" for the registry.
	Audience []string
	// Identity is the id of the assumable identity, form key "identity".
	Identity string
	// Scopes is form key "scopes" (repeated).
	Scopes []string
	// Capabilities is form key "cap" (repeated).
	Capabilities []string
}

// form encodes r as the STS expects it: a url-encoded form, never JSON.
func (r Request) form() url.Values {
	v := url.Values{}
	add := func(key string, values ...string) {
		for _, s := range values {
			if s != "" {
				v.Add(key, s)
			}
		}
	}
	add("aud", r.Audience...)
	add("identity", r.Identity)
	add("scopes", r.Scopes...)
	add("cap", r.Capabilities...)
	return v
}

// Client talks to one STS. It is safe for concurrent use.
type Client struct {
	issuer      string
	url         string
	http        *http.Client
	userAgent   string
	maxAttempts int
	backoffBase time.Duration
	backoffMax  time.Duration
	retryCap    time.Duration
	// jitter returns values in [0,1) for the backoff's random part, and
	// sleep waits between attempts, returning ctx.Err() if ctx ends first.
	// Tests in this package replace them so retries run instantly and
	// deterministically.
	jitter func() float64
	sleep  func(context.Context, time.Duration) error
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send requests with hc (for its transport,
// proxy and timeout). hc is copied, and the copy never follows redirects: a
// redirect must not carry the bearer token to another URL. A nil hc is
// ignored.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithUserAgent sets the User-Agent header; the default is
// "docker-credential-cgr/dev".
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// WithMaxAttempts sets how many requests one Exchange may send in total,
// counting the first (default 3). New rejects n < 1.
func WithMaxAttempts(n int) Option {
	return func(c *Client) { c.maxAttempts = n }
}

// WithBackoff sets the exponential backoff between attempts: base*2^(n-1)
// after attempt n, capped at limit (default 250ms and 4s). The wait is
// "equal jitter": half the backoff plus a random part of the other half, so
// it never drops below half while parallel clients still spread out.
func WithBackoff(base, limit time.Duration) Option {
	return func(c *Client) { c.backoffBase, c.backoffMax = base, limit }
}

// WithRetryAfterCap bounds how long a server's Retry-After is honoured
// (default 10s), so a misbehaving server cannot stall a pull for an hour.
func WithRetryAfterCap(d time.Duration) Option {
	return func(c *Client) { c.retryCap = d }
}

// New returns a Client for the STS at issuer; an empty issuer means
// DefaultIssuer. The issuer must be an https URL (http is allowed for
// loopback hosts only, for local test servers) without query or fragment; it
// may have a path prefix.
func New(issuer string, opts ...Option) (*Client, error) {
	if issuer == "" {
		issuer = DefaultIssuer
	}
	u, err := parseIssuer(issuer)
	if err != nil {
		return nil, err
	}
	c := &Client{
		issuer:      strings.TrimRight(u.String(), "/"),
		url:         u.JoinPath("sts", "exchange").String(),
		http:        &http.Client{Timeout: defaultTimeout, Transport: tlsroots.Transport()},
		userAgent:   defaultUserAgent,
		maxAttempts: defaultMaxAttempts,
		backoffBase: defaultBackoffBase,
		backoffMax:  defaultBackoffMax,
		retryCap:    defaultRetryAfterCap,
		jitter:      rand.Float64,
		sleep:       sleepContext,
	}
	for _, opt := range opts {
		opt(c)
	}
	switch {
	case c.maxAttempts < 1:
		return nil, fmt.Errorf("exchange: max attempts must be at least 1, got %d", c.maxAttempts)
	case c.backoffBase < 0 || c.backoffMax < c.backoffBase:
		return nil, fmt.Errorf("exchange: backoff needs 0 <= base <= max, got base %s and max %s", c.backoffBase, c.backoffMax)
	case c.retryCap < 0:
		return nil, fmt.Errorf("exchange: the Retry-After cap must not be negative, got %s", c.retryCap)
	}
	c.http = NoRedirects(c.http)
	return c, nil
}

// NoRedirects is a copy of hc (http.DefaultClient's settings if nil) that
// never follows a redirect, for every request that carries a secret: Go
// copies Authorization to a redirect on the same host name whatever its
// scheme, so an https endpoint answering with an http:// Location would
// get the secret in clear text. The caller's client keeps its own policy.
func NoRedirects(hc *http.Client) *http.Client {
	c := &http.Client{}
	if hc != nil {
		c2 := *hc
		c = &c2
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// parseIssuer checks that issuer is a URL the subject token may be sent to.
// Its errors never show user info, a query or a value that does not parse
// as a URL (a token pasted into the wrong setting): see DescribeIssuer.
// They do not name the setting; the caller knows where the value came from.
func parseIssuer(issuer string) (*url.URL, error) {
	const fix = "; it must be the STS base URL, e.g. " + DefaultIssuer
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer %s is not a URL%s", DescribeIssuer(issuer), fix)
	}
	if u.User != nil {
		// Printing the URL would print the password; name the problem only.
		return nil, fmt.Errorf("issuer URL for host %s must not contain user info; remove it", logsafe.Quote(u.Hostname(), logsafe.DefaultLimit))
	}
	if !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("issuer %s is not an absolute URL with a host%s", DescribeIssuer(issuer), fix)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
		return nil, fmt.Errorf("issuer %s must not have a query or fragment%s", DescribeIssuer(issuer), fix)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("issuer %s uses http, which is only allowed for loopback hosts (localhost, 127.0.0.0/8, ::1) because the bearer token would travel in clear text; use an https:// URL", DescribeIssuer(issuer))
		}
	default:
		return nil, fmt.Errorf("issuer %s has scheme %s; it must be an https:// URL (http:// only for loopback hosts)", DescribeIssuer(issuer), logsafe.Quote(u.Scheme, 16))
	}
	return u, nil
}

// DescribeIssuer names an issuer value in a message without anything that
// may be a secret: user info, query and fragment are cut off, and a value
// that is not plainly a URL (it does not parse, has no "://", or holds
// something like a JWT) is described by its shape only.
func DescribeIssuer(issuer string) string {
	s, note := stripUserinfo(issuer), ""
	if s != issuer {
		note = " (user info not shown)"
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s, note = s[:i], note+" (query or fragment not shown)"
	}
	// An '@' left after stripping means the value has more than one place
	// user info could hide: show none of it.
	if _, err := url.Parse(s); err != nil || !strings.Contains(s, "://") || strings.ContainsAny(s, "@") || strings.Contains(s, "eyJ") || len(s) > 256 {
		return "(a value of " + logsafe.Shape(issuer) + ")"
	}
	return logsafe.Quote(s, logsafe.DefaultLimit) + note
}

// stripUserinfo removes anything before the last '@' of a URL's authority,
// whether or not the rest parses, so that "https://user:pass@host" and
// "https://to:ken@%zz" both lose their secret before being shown.
func stripUserinfo(s string) string {
	prefix, rest := "", s
	// "//" starts the authority unless a path, query or '@' came first.
	if i := strings.Index(s, "//"); i >= 0 && !strings.ContainsAny(s[:i], "/?#@") {
		prefix, rest = s[:i+2], s[i+2:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return prefix + rest[at+1:]
	}
	return s
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Issuer returns the STS base URL this Client talks to, as New normalised
// it: DefaultIssuer for an empty issuer, no trailing slash. It is the
// issuer's one spelling, so callers use it wherever "https://x" and
// "https://x/" must be the same STS (a cache key, a config file).
func (c *Client) Issuer() string { return c.issuer }

// Exchange asks the STS for a token, presenting subjectToken as the bearer.
//
// Connection errors and 408, 429, 502, 503 and 504 answers are retried up
// to the configured number of attempts, with jittered exponential backoff
// that honours a bounded Retry-After; retry.go says which failures are
// retried and why. Exchange does not start a wait that would outlast ctx's
// deadline; it returns the last error instead. If ctx ends, the error wraps
// both ctx.Err() and the last attempt's error.
//
// Errors are *StatusError, *UnreachableError or wrap ErrInvalidResponse or
// ErrInvalidIdentity (checked before anything is sent), and never contain
// subjectToken or the issued token.
func (c *Client) Exchange(ctx context.Context, subjectToken string, req Request) (Token, error) {
	if subjectToken == "" {
		return Token{}, errors.New("exchange: no subject token to present to the STS")
	}
	if hasControl(subjectToken) {
		// net/http would refuse the header on every attempt, and the
		// failure would read like a network error.
		return Token{}, errors.New("exchange: the subject token contains a line break or control character; check how the ambient token was read (a trailing newline must be trimmed)")
	}
	if err := CheckIdentity(req.Identity); err != nil {
		return Token{}, fmt.Errorf("exchange: identity: %w", err)
	}
	body := req.form().Encode()
	// What the STS's answers must never show: the subject token, and an
	// identity that looks like a secret pasted into the wrong setting (the
	// STS repeats an unknown identity in its message).
	secrets := []string{subjectToken}
	if logsafe.MightBeSecret(req.Identity) {
		secrets = append(secrets, req.Identity)
	}
	var last error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return Token{}, stopped(err, last)
		}
		tok, err := c.attempt(ctx, subjectToken, body, secrets)
		if err == nil {
			return tok, nil
		}
		last = err
		if ctxErr := ctx.Err(); ctxErr != nil {
			return Token{}, stopped(ctxErr, last)
		}
		if !retryable(err) || attempt >= c.maxAttempts {
			return Token{}, err
		}
		var retryAfter time.Duration
		var se *StatusError
		if errors.As(err, &se) {
			retryAfter = se.RetryAfter
		}
		wait := c.wait(attempt, retryAfter)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return Token{}, err
		}
		if err := c.sleep(ctx, wait); err != nil {
			return Token{}, stopped(err, last)
		}
	}
}

// hasControl reports an ASCII control character in s. Bytes, not runes:
// no byte of a multi-byte UTF-8 sequence is below 0x80, and a cold get
// runs this over the whole subject token.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// stopped is the error for a caller that gave up: it wraps the context's
// error and, when there was an attempt, that attempt's error.
func stopped(ctxErr, last error) error {
	if last == nil {
		return fmt.Errorf("gave up on the STS exchange before asking (%w)", ctxErr)
	}
	return fmt.Errorf("gave up on the STS exchange (%w); last attempt: %w", ctxErr, last)
}

// wait is the pause after attempt n: equal-jittered exponential backoff, or
// the server's Retry-After (up to the cap) if that is longer.
func (c *Client) wait(attempt int, retryAfter time.Duration) time.Duration {
	d := c.backoffBase
	for i := 1; i < attempt && d < c.backoffMax; i++ {
		if d > c.backoffMax/2 {
			d = c.backoffMax
			break
		}
		d *= 2
	}
	d = min(d, c.backoffMax)
	j := c.jitter()
	if !(j >= 0 && j < 1) { // also catches NaN
		j = 0
	}
	w := d/2 + time.Duration(j*float64(d-d/2))
	return max(w, min(retryAfter, c.retryCap))
}

// attempt sends one request. secrets are taken out of anything the STS or
// the network says.
func (c *Client) attempt(ctx context.Context, subjectToken, body string, secrets []string) (Token, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(body))
	if err != nil {
		return Token{}, fmt.Errorf("exchange: building the request to %s: %w", c.url, err)
	}
	hreq.Header.Set("Authorization", "Bearer "+subjectToken)
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", c.userAgent)

	resp, err := c.http.Do(hreq)
	if err != nil {
		return Token{}, c.unreachable(err, secrets)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		_ = resp.Body.Close()
	}()

	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		// The answer started but broke off: as good as no answer.
		return Token{}, c.unreachable(err, secrets)
	}
	if resp.StatusCode == http.StatusOK {
		if len(data) > maxBody {
			return Token{}, fmt.Errorf("STS %s: %w: the body is larger than %d bytes", c.url, ErrInvalidResponse, maxBody)
		}
		tok, err := parseResponse(data)
		if err != nil {
			return Token{}, fmt.Errorf("STS %s: %w (Content-Type %s)",
				c.url, err, logsafe.Quote(cleanMessage(resp.Header.Get("Content-Type"), 100, secrets), 100))
		}
		return tok, nil
	}
	return Token{}, c.statusError(resp, data[:min(len(data), maxBody)], secrets)
}

// unreachable wraps a transport error. *url.Error is unwrapped because its
// text repeats the method and URL that UnreachableError already names.
//
// net/http's own errors quote what the server sent (a Location header it
// could not parse, say), which may echo the subject token or break the line:
// their text is cleaned like any server text, keeping the chain for
// errors.Is/As.
func (c *Client) unreachable(err error, secrets []string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	// net/http quotes a Location it cannot parse whole, user info included.
	if strings.HasPrefix(err.Error(), "failed to parse Location header") {
		return &UnreachableError{URL: c.url, Err: &cleanedError{msg: "the STS answered a redirect whose Location header is not a URL", err: err}}
	}
	if msg := cleanMessage(err.Error(), maxMessage, secrets); msg != err.Error() {
		err = &cleanedError{msg: msg, err: err}
	}
	return &UnreachableError{URL: c.url, Err: err}
}

// cleanedError is an error whose text was made safe to show.
type cleanedError struct {
	msg string
	err error
}

func (e *cleanedError) Error() string { return e.msg }
func (e *cleanedError) Unwrap() error { return e.err }

func (c *Client) statusError(resp *http.Response, body []byte, secrets []string) *StatusError {
	se := &StatusError{
		URL:        c.url,
		HTTPStatus: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	if se.Redirect() {
		se.Location = cleanMessage(stripUserinfo(resp.Header.Get("Location")), maxSnippet, secrets)
		se.Message = http.StatusText(resp.StatusCode)
		return se
	}
	se.Code, se.Message = parseErrorBody(body, secrets...)
	if se.Message == "" {
		se.Message = http.StatusText(resp.StatusCode)
	}
	if se.Message == "" {
		se.Message = "no message"
	}
	return se
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// Anything unparseable or in the past is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case secs <= 0:
			return 0
		case secs > int64(maxDuration/time.Second):
			return maxDuration // the caller caps it anyway
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

const maxDuration = time.Duration(1<<63 - 1)

// sleepContext waits for d or until ctx ends, whichever is first.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
