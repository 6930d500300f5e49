package exchange

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzExchangeAnswer drives a whole Exchange against a fuzzed answer (status,
// body, Content-Type, Location, Retry-After) from an in-process transport, so
// every path that turns server text into an error is reached: the 200 parser,
// the error-body parser, the redirect refusal, and net/http's own handling of
// the answer. The subject token is fuzzed too (in the JWT alphabet, as a real
// one is) and spliced into the body and headers, as a server echoing it would.
// Properties:
//
//   - an error is one line (no line break of any kind) and at most
//     maxFuzzErrText bytes;
//   - no error shows the subject token, nor any dot-separated part of it of
//     16 bytes or more;
//   - only a 200 succeeds, with a token whose Raw is a JWT from the body.
func FuzzExchangeAnswer(f *testing.F) {
	for _, s := range []struct {
		status                       uint16
		body                         string
		contentType, location, retry string
		secret                       string
	}{
		{200, `{"token":"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln"}`, "application/json", "", "", "abcdefghijklmnop.qrstuvwxyzABCDEF.GHIJKLMNOPQRSTUV"},
		{200, `<html>`, "text/html\r\nX: y", "", "", "sig"},
		{403, `{"code":7,"message":"identity mismatch for token "}`, "application/json", "", "", "payloadpayloadpayload"},
		{302, ``, "", "https://elsewhere.example/sts?token=", "", "secretsecretsecret"},
		{302, ``, "", "%zz\n", "", "secretsecretsecret"},
		{301, ``, "", "http://[::1", "", "secretsecretsecret.part2part2part2part2"},
		{429, "slow down\n\nsecond line ", "", "", "120", "aaaaaaaaaaaaaaaaaaaa"},
		{503, "<html><head><title>oops \u2028 here</title>", "", "", "Wed, 21 Oct 2015 07:28:00 GMT", "bbbbbbbbbbbbbbbbbbbbbbbb"},
		{500, strings.Repeat("x", 3000), "", "", "", "cccccccccccccccccc"},
		{404, "", "", "", "", ""},
	} {
		f.Add(s.status, []byte(s.body), s.contentType, s.location, s.retry, s.secret)
	}
	f.Fuzz(func(t *testing.T, status uint16, body []byte, contentType, location, retryAfter, secret string) {
		subject := "eyJ" + jwtAlphabet(secret)
		code := int(status) % 600
		if code < 200 {
			code = 200 + code%100 // 1xx answers are informational; net/http never returns them
		}
		mid := len(body) / 2
		answer := &http.Response{
			StatusCode: code,
			Status:     http.StatusText(code),
			Header:     http.Header{},
			Body:       io.NopCloser(bytes.NewReader(append(append(append([]byte(nil), body[:mid]...), subject...), body[mid:]...))),
		}
		if contentType != "" {
			answer.Header.Set("Content-Type", contentType+subject)
		}
		if location != "" {
			answer.Header.Set("Location", location+subject)
		}
		if retryAfter != "" {
			answer.Header.Set("Retry-After", retryAfter)
		}
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			answer.Request = r
			return answer, nil
		})}
		c, err := New("https://sts.example", WithHTTPClient(hc), WithMaxAttempts(1))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := c.Exchange(context.Background(), subject, Request{Audience: []string{"cgr.dev"}, Identity: "id"})
		if err == nil {
			if code != http.StatusOK {
				t.Fatalf("status %d gave a token", code)
			}
			if _, perr := ParseToken(tok.Raw); perr != nil || !bytes.Contains(body, []byte(tok.Raw)) && !strings.Contains(string(body[:mid])+subject+string(body[mid:]), tok.Raw) {
				t.Fatalf("the token is not a JWT from the body")
			}
			return
		}
		msg := err.Error()
		if i := strings.IndexAny(msg, "\r\n\v\f\u0085\u2028\u2029"); i >= 0 {
			t.Errorf("the error is not one line: a line break at byte %d of %d", i, len(msg))
		}
		if len(msg) > maxFuzzErrText {
			t.Errorf("the error is %d bytes, more than %d", len(msg), maxFuzzErrText)
		}
		if !utf8.ValidString(msg) {
			t.Errorf("the error is not valid UTF-8")
		}
		if strings.Contains(msg, subject) {
			t.Errorf("the error shows the subject token")
		}
		for part := range strings.SplitSeq(subject, ".") {
			if len(part) >= 16 && strings.Contains(msg, part) {
				t.Errorf("the error shows a %d-byte part of the subject token", len(part))
			}
		}
		var se *StatusError
		if errors.As(err, &se) && utf8.RuneCountInString(se.Message) > maxMessage+200 {
			t.Errorf("the server's message is %d runes", utf8.RuneCountInString(se.Message))
		}
	})
}

// maxFuzzErrText bounds an error built from a server's answer: a capped
// message (maxMessage runes of up to 4 bytes) and the fixed text around it.
const maxFuzzErrText = 4*maxMessage + 1024

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// jwtAlphabet maps s onto base64url and '.', the characters of a JWT, so the
// fuzzed subject token has a real token's shape.
func jwtAlphabet(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
	b := []byte(s)
	for i, c := range b {
		b[i] = alphabet[int(c)%len(alphabet)]
	}
	return string(b)
}
