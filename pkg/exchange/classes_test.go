package exchange

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

// maxErrorLen bounds any error message: a server's message is capped at
// maxMessage runes, plus our own words around it.
const maxErrorLen = 2 * maxMessage

// requireOneLine fails if msg could forge or flood a log line.
func requireOneLine(t *testing.T, msg string) {
	t.Helper()
	require.False(t, strings.ContainsAny(msg, "\r\n"), "the error is one line")
	require.LessOrEqual(t, len(msg), maxErrorLen, "the error is length-capped")
}

// TestRetryTable is the policy documented in retry.go: how many requests one
// Exchange sends for each answer, with three attempts allowed. Every answer
// is scripted three times, so a retry gets the same answer again (and a
// fourth attempt would get a token).
func TestRetryTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status   int
		attempts int
	}{
		{http.StatusMovedPermanently, 1},
		{http.StatusFound, 1},
		{http.StatusTemporaryRedirect, 1},
		{http.StatusBadRequest, 1},
		{http.StatusUnauthorized, 1},
		{http.StatusForbidden, 1},
		{http.StatusNotFound, 1},
		{http.StatusMethodNotAllowed, 1},
		{http.StatusRequestTimeout, 3},
		{http.StatusConflict, 1},
		{http.StatusTooManyRequests, 3},
		{http.StatusInternalServerError, 1},
		{http.StatusNotImplemented, 1},
		{http.StatusBadGateway, 3},
		{http.StatusServiceUnavailable, 3},
		{http.StatusGatewayTimeout, 3},
		{http.StatusHTTPVersionNotSupported, 1},
		{599, 1},
	} {
		for _, noBody := range []bool{false, true} {
			t.Run(fmt.Sprint(tc.status, " empty body ", noBody), func(t *testing.T) {
				t.Parallel()
				a := statusAnswer(tc.status, noBody)
				sts := newFakeSTS(t, a, a, a)
				c, rec := sts.client(t)
				_, err := c.Exchange(context.Background(), "subject", registryReq)
				var se *StatusError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, tc.status, se.HTTPStatus)
				assert.Equal(t, tc.attempts, sts.requests(), "attempts")
				assert.Len(t, rec.recorded(), tc.attempts-1, "waits")
				requireOneLine(t, err.Error())
			})
		}
	}
}

// errTransport fails every round trip with err, counting them.
type errTransport struct {
	err error
	n   int
}

func (e *errTransport) RoundTrip(*http.Request) (*http.Response, error) {
	e.n++
	return nil, e.err
}

func TestRetryTableNetworkErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		err      error
		attempts int
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, 3},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, 3},
		{"DNS timeout", &net.DNSError{Err: "i/o timeout", Name: "issuer.example", IsTimeout: true}, 3},
		{"DNS name not found", &net.DNSError{Err: "no such host", Name: "issuer.example", IsNotFound: true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &errTransport{err: tc.err}
			c, rec := newTestClient(t, "https://issuer.example", WithHTTPClient(&http.Client{Transport: rt}))
			_, err := c.Exchange(context.Background(), "subject", registryReq)
			var ue *UnreachableError
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, tc.attempts, rt.n)
			assert.Len(t, rec.recorded(), tc.attempts-1)
			requireOneLine(t, err.Error())
		})
	}

	t.Run("certificate not trusted", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		c, rec := newTestClient(t, srv.URL) // the default client does not trust the test CA
		_, err := c.Exchange(context.Background(), "subject", registryReq)
		var ue *UnreachableError
		require.ErrorAs(t, err, &ue)
		assert.Empty(t, rec.recorded(), "a certificate that does not verify is not retried")
		assert.Contains(t, err.Error(), "certificate")
	})
}

func TestStatusClasses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                    string
		e                       StatusError
		notSTS, server, skew, x bool
	}{
		{"302", StatusError{HTTPStatus: 302}, true, false, false, false},
		{"201 empty", StatusError{HTTPStatus: 201, Message: "Created"}, true, false, false, false},
		{"404 plain", StatusError{HTTPStatus: 404, Message: "404 page not found"}, true, false, false, false},
		{"404 html", StatusError{HTTPStatus: 404, Message: "Not Found - nginx"}, true, false, false, false},
		{"403 html", StatusError{HTTPStatus: 403, Message: "Access denied"}, true, false, false, false},
		{"404 gateway no route", StatusError{HTTPStatus: 404, Code: 5, Message: "Not Found"}, true, false, false, false},
		{"405 gateway no route", StatusError{HTTPStatus: 405, Code: 12, Message: "Method Not Allowed"}, true, false, false, false},
		{"404 unknown identity", StatusError{HTTPStatus: 404, Code: 5, Message: "identity abc not found"}, false, false, false, false},
		{"403 grpc", StatusError{HTTPStatus: 403, Code: 7, Message: "may not assume"}, false, false, false, false},
		{"408", StatusError{HTTPStatus: 408}, false, false, false, false},
		{"429", StatusError{HTTPStatus: 429}, false, false, false, false},
		{"500", StatusError{HTTPStatus: 500, Message: "Internal Server Error"}, false, true, false, false},
		{"502 html", StatusError{HTTPStatus: 502, Message: "502 Bad Gateway"}, false, true, false, false},
		{"sandbox nbf", StatusError{HTTPStatus: 401, Code: 16, Message: "unable to verify token: token not valid before 2030-01-01T00:00:00Z"}, false, false, true, false},
		{"go-oidc nbf", StatusError{HTTPStatus: 401, Code: 16, Message: "oidc: current time 2026-01-01 before the nbf (not before) time: 2026-01-02"}, false, false, true, false},
		{"golang-jwt iat", StatusError{HTTPStatus: 401, Code: 16, Message: "token has invalid claims: token used before issued"}, false, false, true, false},
		{"go-jose iat", StatusError{HTTPStatus: 403, Code: 7, Message: "validation field, token issued in the future (iat)"}, false, false, true, false},
		{"nbf words without grpc body", StatusError{HTTPStatus: 401, Message: "token not valid yet"}, true, false, false, false},
		{"sandbox expired", StatusError{HTTPStatus: 401, Code: 16, Message: "unable to verify token: token expired at 2020-01-01T00:00:00Z"}, false, false, false, true},
		{"go-oidc expired", StatusError{HTTPStatus: 401, Code: 16, Message: "oidc: token is expired (Token Expiry: 2020-01-01)"}, false, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.notSTS, tc.e.NotSTS(), "NotSTS")
			assert.Equal(t, tc.server, tc.e.ServerFault(), "ServerFault")
			assert.Equal(t, tc.skew, tc.e.ClockSkew(), "ClockSkew")
			assert.Equal(t, tc.x, tc.e.TokenExpired(), "TokenExpired")
		})
	}
}

// TestClockSkewFromTheSTS: a token dated ahead of the STS's clock is refused
// by the sandbox STS in its own words, which ClockSkew recognises.
func TestClockSkewFromTheSTS(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ahead := mintAmbient(t, w.Issuer, "default", "puller", sandbox.WithIssuedAt(time.Now().Add(10*time.Minute)))
	c, rec := newTestClient(t, w.STS.URL())
	_, err := c.Exchange(context.Background(), ahead, registryReq)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusUnauthorized, se.HTTPStatus)
	assert.True(t, se.ClockSkew(), se.Message)
	assert.False(t, se.TokenExpired())
	assert.Empty(t, rec.recorded())
}

func TestIssuerErrorsShowNoSecret(t *testing.T) {
	t.Parallel()
	const secret = "hunter2"
	jwtLike := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJodW50ZXIyIn0.aHVudGVyMi1zaWduYXR1cmU"
	for _, issuer := range []string{
		"https://user:" + secret + "@issuer.enforce.dev",
		"https://user:" + secret + "@%zz",
		"https://:" + secret + "@issuer.enforce.dev/x?y",
		"http://user:" + secret + "@example.com",
		"ftp://u:" + secret + "@host",
		"user:" + secret + "@host",
		"https:user:" + secret + "@host",
		"user:" + secret + "@host/x://y",
		"https://issuer.enforce.dev?token=" + secret,
		"https://issuer.enforce.dev/#" + secret,
		secret,
		jwtLike,
		"Bearer " + jwtLike,
		" " + secret + "\n",
	} {
		t.Run(fmt.Sprintf("%q", issuer[:min(len(issuer), 12)]), func(t *testing.T) {
			_, err := New(issuer)
			require.Error(t, err)
			msg := err.Error()
			assert.False(t, strings.Contains(msg, secret), "leaked the secret")
			assert.False(t, strings.Contains(msg, "aHVudGVy"), "leaked part of the JWT")
			assert.NotContains(t, msg, "CHAINGUARD_", "the caller names its settings (see creds' TestIssuerErrorsNameTheSetting)")
			requireOneLine(t, msg)
		})
	}

	// A harmless value is still shown, to help fix it.
	_, err := New("http://issuer.enforce.dev/prefix")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"http://issuer.enforce.dev/prefix"`)
	_, err = New("https://user:pw@issuer.enforce.dev/x?q")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"issuer.enforce.dev"`, "the host is named")
}

func TestStripUserinfo(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://host/p":               "https://host/p",
		"https://u:p@host/p":           "https://host/p",
		"https://u:p@x@host/p@q":       "https://host/p@q",
		"//u:p@host":                   "//host",
		"u:p@host/a":                   "host/a",
		"https:u:p@host":               "host",
		"u:p@host/x://y":               "host/x://y",
		"https://host/?next=a@b":       "https://host/?next=a@b",
		"":                             "",
		"1https://u:p@host":            "1https://host",
		"https://u:p@%zz":              "https://%zz",
		"https://u:p@[::1]:8/sts?x=@y": "https://[::1]:8/sts?x=@y",
	} {
		assert.Equal(t, want, stripUserinfo(in), "input %q", in)
	}
}

func TestCheckIdentity(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "abc", "abc/def", sandbox.DefaultIdentity, "identity-a", "a.b_c:d", strings.Repeat("a", MaxIdentityLen)} {
		assert.NoError(t, CheckIdentity(id), "%q", id)
	}
	jwtLike := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ"
	for name, tc := range map[string]struct{ id, why string }{
		"newline":       {"abc\nforged: line", `contains '\n' at byte 3`},
		"carriage ret":  {"abc\r", `contains '\r' at byte 3`},
		"escape":        {"a\x1b[31m", `contains '\x1b' at byte 1`},
		"space":         {"a b", `contains ' ' at byte 1`},
		"quote":         {`a"b`, `contains '"' at byte 1`},
		"non-ASCII":     {"aé", `contains 'é' at byte 1`},
		"invalid UTF-8": {"a\xff", "contains invalid UTF-8 at byte 1"},
		"too long":      {strings.Repeat("a", MaxIdentityLen+1), "is too long"},
		"huge":          {strings.Repeat("x", 1<<20), "is too long"},
		"a JWT":         {jwtLike, "looks like a JWT"},
		"a JWT inside":  {"id-" + jwtLike, "looks like a JWT"},
	} {
		t.Run(name, func(t *testing.T) {
			err := CheckIdentity(tc.id)
			require.ErrorIs(t, err, ErrInvalidIdentity)
			msg := err.Error()
			assert.Contains(t, msg, tc.why)
			assert.Contains(t, msg, "bytes", "the shape is described")
			assert.False(t, strings.Contains(msg, "c2VjcmV0"), "leaked the JWT's signature")
			assert.False(t, len(tc.id) > 4 && strings.Contains(msg, tc.id[1:]), "echoed the value")
			requireOneLine(t, msg)
		})
	}
}

func TestExchangeRefusesAnImplausibleIdentity(t *testing.T) {
	t.Parallel()
	sts := newFakeSTS(t)
	c, _ := sts.client(t)
	_, err := c.Exchange(context.Background(), "subject", Request{Audience: registryReq.Audience, Identity: "abc\ndef"})
	require.ErrorIs(t, err, ErrInvalidIdentity)
	requireOneLine(t, err.Error())
	assert.Zero(t, sts.requests(), "nothing was sent")
}

// TestContentTypeAndMessagesQuoted uses the sandbox, not fakeSTS: the point
// is what hostile header values look like once a real server sent them.
func TestContentTypeAndMessagesQuoted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.STS.InjectFaults(
		sandbox.Fault{Status: 200, Body: "nope", Header: map[string]string{"Content-Type": "text/plain\u202e; x=\"FAKE\"" + strings.Repeat("x", 5000)}},
		sandbox.Fault{Status: 403, Code: 7, Message: "no\r\nFAKE: other line " + strings.Repeat("y", 5000)},
		sandbox.Fault{Status: 302, Header: map[string]string{"Location": "https://user:pw-secret@elsewhere.example/sts\r\nx"}},
	)
	c, _ := newTestClient(t, w.STS.URL())
	for i := range 3 {
		_, err := c.Exchange(context.Background(), w.ambient, registryReq)
		require.Error(t, err, "fault %d", i)
		msg := err.Error()
		requireOneLine(t, msg)
		assert.False(t, strings.Contains(msg, "pw-secret"), "leaked URL user info")
		assert.NotContains(t, msg, "\u202e", "no bidi override reaches the terminal")
	}
	assert.Equal(t, 3, w.STS.Requests(), "each fault was played once, none retried")
}
