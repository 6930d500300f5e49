package exchange

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// Tests of what the Client does with an answer (which are retried, how long
// it waits, how a body is read) talk to fakeSTS, an http.RoundTripper with
// canned answers: the sandbox STS's real tokens and signatures add nothing
// there. The tests that prove the wire format talk to the sandbox.

// canned is one answer of a fakeSTS.
type canned struct {
	status int
	body   string
	header map[string]string
}

// rpc is an error answer in the STS's own format, grpc-gateway's.
func rpc(status, code int, message string) canned {
	b, err := json.Marshal(map[string]any{"code": code, "message": message, "details": []any{}})
	if err != nil {
		panic(err)
	}
	return canned{status: status, body: string(b), header: map[string]string{"Content-Type": "application/json"}}
}

// bare is an answer without a body, as load balancers and proxies give.
func bare(status int) canned { return canned{status: status} }

// statusAnswer is the STS's error answer for status, or a bare one.
func statusAnswer(status int, noBody bool) canned {
	if noBody {
		return bare(status)
	}
	return rpc(status, 2, http.StatusText(status))
}

// fakeSTS plays its script of answers in order, one per request. When the
// script runs out it answers 200 with token, so an attempt too many shows
// as a success.
type fakeSTS struct {
	token string

	mu     sync.Mutex
	script []canned
	n      int
}

func newFakeSTS(t testing.TB, script ...canned) *fakeSTS {
	t.Helper()
	return &fakeSTS{script: script, token: mintJWT(t, jwt.MapClaims{"sub": "fake", "exp": time.Now().Add(time.Hour).Unix()})}
}

func (f *fakeSTS) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil { // a RoundTripper must close it
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	f.mu.Lock()
	f.n++
	a := canned{status: http.StatusOK, body: `{"token":"` + f.token + `"}`}
	if len(f.script) > 0 {
		a, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	h := http.Header{}
	for k, v := range a.header {
		h.Set(k, v)
	}
	return &http.Response{
		Status:        strconv.Itoa(a.status) + " " + http.StatusText(a.status),
		StatusCode:    a.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(a.body)),
		ContentLength: int64(len(a.body)),
		Request:       r,
	}, nil
}

// requests is how many requests the fake has answered.
func (f *fakeSTS) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// fakeIssuer is the issuer of Clients talking to a fakeSTS; nothing listens
// there.
const fakeIssuer = "https://sts.test"

// client returns a Client talking to f, with instant, jitter-free retries.
func (f *fakeSTS) client(t *testing.T, opts ...Option) (*Client, *sleepRecorder) {
	t.Helper()
	return newTestClient(t, fakeIssuer, append([]Option{WithHTTPClient(&http.Client{Transport: f})}, opts...)...)
}

// closedURL is an http URL on loopback where nothing listens, so
// connections are refused.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	return u
}
