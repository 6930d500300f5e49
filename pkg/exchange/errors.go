package exchange

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// StatusError means the STS answered with a status other than 200.
type StatusError struct {
	// URL is the exchange URL. It never carries secrets: the subject token
	// travels in a header and the parameters in the body.
	URL string
	// HTTPStatus is the HTTP status code of the answer.
	HTTPStatus int
	// Code is the gRPC status code from a grpc-gateway error body
	// ({"code":7,"message":"...","details":[]}), or 0 if the body was not
	// of that shape.
	Code int
	// Message is what the server said: the grpc-gateway message, or a short
	// printable snippet of any other body, with the subject token redacted.
	// For an empty body it is the HTTP status text. It is one line of
	// printable text, but still the server's: Error quotes it.
	Message string
	// Location is where a 3xx answer pointed, without user info and with
	// the subject token redacted; empty for other answers.
	Location string
	// RetryAfter is the server's Retry-After (seconds or HTTP date), or 0.
	RetryAfter time.Duration
}

// Error reads like `STS <url> answered 403 Forbidden (PermissionDenied):
// "<message>"`. The server's text is quoted so that it cannot pass for ours
// nor break the line. What to do about it is the caller's to say: it knows
// where the token and the identity came from.
func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString("STS ")
	b.WriteString(e.URL)
	b.WriteString(" answered ")
	b.WriteString(strconv.Itoa(e.HTTPStatus))
	if text := http.StatusText(e.HTTPStatus); text != "" {
		b.WriteString(" ")
		b.WriteString(text)
	}
	if e.Code != 0 {
		b.WriteString(" (")
		b.WriteString(grpcCodeName(e.Code))
		b.WriteString(")")
	}
	if e.Redirect() {
		b.WriteString(", a redirect to ")
		if e.Location == "" {
			b.WriteString("an unnamed location")
		} else {
			b.WriteString(logsafe.Quote(e.Location, maxSnippet))
		}
		b.WriteString(" that was not followed: a redirect must not carry the bearer token elsewhere")
		return b.String()
	}
	// An empty body leaves Message as the status text; don't say it twice.
	if e.Message != "" && e.Message != http.StatusText(e.HTTPStatus) {
		b.WriteString(": ")
		b.WriteString(logsafe.Quote(e.Message, maxMessage))
	}
	return b.String()
}

// Temporary reports whether the status is worth retrying later: 408, 429,
// 502, 503 and 504 (see retry.go for why).
func (e *StatusError) Temporary() bool {
	return retryableStatus(e.HTTPStatus)
}

// Redirect reports a 3xx answer. Redirects are never followed: the bearer
// token must not travel to a URL nobody configured.
func (e *StatusError) Redirect() bool {
	return e.HTTPStatus >= 300 && e.HTTPStatus < 400
}

// ServerFault reports a 5xx answer: the STS or something in front of it
// failed, whatever the request.
func (e *StatusError) ServerFault() bool {
	return e.HTTPStatus >= 500 && e.HTTPStatus < 600
}

// NotSTS reports an answer that shows the exchange URL is not the Chainguard
// STS's: a redirect or a 2xx other than 200; a 4xx other than 408 and 429
// without the STS's grpc-gateway error body (an HTML page, a web server's
// "404 page not found"); or grpc-gateway's own answer for a path it has no
// route for (404 "Not Found", 405 "Method Not Allowed"), which a wrong path
// in the issuer URL gets. The STS's real refusals carry a gRPC code and
// their own message.
func (e *StatusError) NotSTS() bool {
	switch {
	case e.HTTPStatus < 400: // a redirect, or a 2xx other than 200
		return true
	case e.HTTPStatus >= 500 || e.Temporary():
		return false
	case e.Code == 0:
		return true
	}
	return (e.HTTPStatus == http.StatusNotFound && e.Code == 5 && e.Message == "Not Found") ||
		(e.HTTPStatus == http.StatusMethodNotAllowed && e.Code == 12 && e.Message == "Method Not Allowed")
}

// ClockSkew reports a refusal of the subject token as not valid yet: its nbf
// or iat is in the future by the STS's clock, so the clocks of the token's
// issuer and the STS disagree. It matches the wording of the common JWT
// verifiers (go-oidc, golang-jwt, go-jose) and of the sandbox STS.
func (e *StatusError) ClockSkew() bool {
	if !e.refusesToken() {
		return false
	}
	m := strings.ToLower(e.Message)
	for _, s := range [...]string{
		"not valid yet", "not yet valid", "not valid before", "before the nbf",
		"used before issued", "issued in the future", "(nbf)", "(iat)",
	} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// TokenExpired reports a refusal of the subject token as expired. If the
// caller's own clock says the token still has a while to live, the clocks
// disagree.
func (e *StatusError) TokenExpired() bool {
	if !e.refusesToken() {
		return false
	}
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "expired") && !e.ClockSkew()
}

// refusesToken: the STS itself (a gRPC body) refused the subject token.
func (e *StatusError) refusesToken() bool {
	return e.Code != 0 && (e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden)
}

// UnreachableError means no attempt got an HTTP answer from the STS: the
// dial, TLS handshake or request timed out or failed.
type UnreachableError struct {
	// URL is the exchange URL.
	URL string
	// Err is the network error of the last attempt.
	Err error
}

// Error names the URL and the network error. What to check is the
// caller's to say: it knows where the issuer URL came from.
func (e *UnreachableError) Error() string {
	return "cannot reach the STS at " + e.URL + ": " + e.Err.Error()
}

// Unwrap returns the network error, so errors.Is(err, context.DeadlineExceeded)
// and net.Error checks work.
func (e *UnreachableError) Unwrap() error { return e.Err }

// grpcCodeName is the name of a gRPC status code, as google.golang.org/grpc/codes
// spells it, without importing grpc for sixteen strings.
func grpcCodeName(code int) string {
	switch code {
	case 0:
		return "OK"
	case 1:
		return "Canceled"
	case 2:
		return "Unknown"
	case 3:
		return "InvalidArgument"
	case 4:
		return "DeadlineExceeded"
	case 5:
		return "NotFound"
	case 6:
		return "AlreadyExists"
	case 7:
		return "PermissionDenied"
	case 8:
		return "ResourceExhausted"
	case 9:
		return "FailedPrecondition"
	case 10:
		return "Aborted"
	case 11:
		return "OutOfRange"
	case 12:
		return "Unimplemented"
	case 13:
		return "Internal"
	case 14:
		return "Unavailable"
	case 15:
		return "DataLoss"
	case 16:
		return "Unauthenticated"
	}
	return "gRPC code " + strconv.Itoa(code)
}

const (
	// maxSnippet bounds the part of a non-grpc error body shown to people:
	// enough for a proxy's one-line reason, not a whole HTML page.
	maxSnippet = 200
	// maxMessage bounds a message the server put in a structured error
	// body. Those are written for people and may list claims, so they get
	// more room than a snippet, but still a bound.
	maxMessage = 1000
)

// parseErrorBody extracts a gRPC code and a printable message from the body
// of a non-200 answer. The message has every secret redacted, is valid UTF-8,
// and is at most maxMessage runes (maxSnippet for unstructured bodies). An
// empty message means the body said nothing usable.
func parseErrorBody(body []byte, secrets ...string) (code int, message string) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return 0, ""
	}
	if body[0] == '{' {
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) == nil {
			// grpc-gateway: {"code": 7, "message": "...", "details": []}.
			var c int
			var msg string
			if json.Unmarshal(fields["code"], &c) == nil && json.Unmarshal(fields["message"], &msg) == nil {
				return c, cleanMessage(msg, maxMessage, secrets)
			}
			// Other JSON error shapes (OAuth-style proxies and the like).
			for _, key := range [...]string{"message", "error_description", "error"} {
				if json.Unmarshal(fields[key], &msg) == nil && strings.TrimSpace(msg) != "" {
					return 0, cleanMessage(msg, maxMessage, secrets)
				}
			}
		}
	}
	text := string(body)
	if title, ok := htmlTitle(text); ok {
		text = title
	}
	return 0, cleanMessage(text, maxSnippet, secrets)
}

// htmlTitle returns the <title> of an HTML page: a load balancer's error page
// says what went wrong there, and the rest is markup.
func htmlTitle(s string) (string, bool) {
	// Only look at the page's start; a title is in the head.
	head := s[:min(len(s), 4096)]
	lower := strings.ToLower(head)
	if !strings.HasPrefix(lower, "<") {
		return "", false
	}
	start := strings.Index(lower, "<title>")
	if start < 0 {
		return "", false
	}
	start += len("<title>")
	end := strings.Index(lower[start:], "</title>")
	if end < 0 {
		return "", false
	}
	// lower and head index the same bytes only while ToLower kept lengths;
	// when it did not (rare non-ASCII), fall back to the snippet.
	if len(lower) != len(head) {
		return "", false
	}
	return head[start : start+end], true
}

// cleanMessage makes server text safe to show: secrets redacted (and
// again after cleaning, which could join the parts of one), invalid UTF-8
// and non-printable runes replaced, whitespace collapsed, and at most limit
// runes long.
func cleanMessage(s string, limit int, secrets []string) string {
	s = logsafe.Redact(s, secrets...)
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case !unicode.IsPrint(r):
			// Replaced, not dropped, so that removing a control character
			// cannot splice two halves of a secret back together.
			r = '\uFFFD'
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	s = logsafe.Redact(b.String(), secrets...)
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	n := 0
	for i := range s {
		if n == limit-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
