package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// answering is a credentials.Helper whose Get answers with fixed values,
// and records the server URL it was asked for.
type answering struct {
	broken
	username, secret string
	err              error
	asked            *string
}

func (a answering) Get(serverURL string) (string, string, error) {
	*a.asked = serverURL
	return a.username, a.secret, a.err
}

// requireSameAsServe fails unless serveGet answers request as
// credentials.Serve would: the same bytes on stdout, the same exit status,
// the same server URL passed to the helper.
func requireSameAsServe(t *testing.T, request, username, secret string, err error) {
	t.Helper()
	var askedWant, askedGot string
	var want bytes.Buffer
	wantCode := 0
	if e := credentials.HandleCommand(answering{username: username, secret: secret, err: err, asked: &askedWant}, credentials.ActionGet, strings.NewReader(request), &want); e != nil {
		// What Serve does with HandleCommand's error.
		_, _ = fmt.Fprintln(&want, e)
		wantCode = 1
	}
	var got bytes.Buffer
	gotCode := serveGet(answering{username: username, secret: secret, err: err, asked: &askedGot}, strings.NewReader(request), &got)
	assert.Equal(t, want.String(), got.String())
	assert.Equal(t, wantCode, gotCode)
	assert.Equal(t, askedWant, askedGot)
}

func TestServeGetIsCredentialsServe(t *testing.T) {
	t.Parallel()
	const token = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2lnbmF0dXJl"
	cases := []struct {
		name, request, username, secret string
		err                             error
	}{
		{name: "a cached get", request: "cgr.dev\n", username: "_token", secret: token},
		{name: "no newline", request: "cgr.dev", username: "_token", secret: token},
		{name: "lines joined, space trimmed", request: "  cgr.\r\ndev  \n\n", username: "_token", secret: token},
		{name: "no server URL", request: " \n"},
		{name: "empty request", request: ""},
		{name: "not found", request: "example.com\n", err: credentials.NewErrCredentialsNotFound()},
		{name: "an error", request: "cgr.dev\n", err: errors.New("the STS refused: check CHAINGUARD_IDENTITY")},
		{name: "characters encoding/json escapes", request: "<cgr&dev>\n", username: "a\"b\\c\td\x01", secret: "é\u2028\xff<>&"},
		{name: "a line longer than bufio.Scanner takes", request: strings.Repeat("x", 70000), username: "_token", secret: token},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			requireSameAsServe(t, c.request, c.username, c.secret, c.err)
		})
	}
}

func FuzzServeGetIsCredentialsServe(f *testing.F) {
	f.Add("cgr.dev\n", "_token", "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln", "")
	f.Add(" \n", "", "", "")
	f.Add("a\nb\r\n", "\x00<", "\u2028\xff", "credentials not found in native keychain")
	f.Fuzz(func(t *testing.T, request, username, secret, failure string) {
		var err error
		if failure != "" {
			err = errors.New(failure)
		}
		requireSameAsServe(t, request, username, secret, err)
	})
}

// failingWriter refuses every write, as a stdout closed by the client
// would.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// TestServeGetIgnoresAFailedWriteAsCredentialsGetDoes: credentials.Get
// does not report a failed write of its answer, so neither does serveGet.
func TestServeGetIgnoresAFailedWriteAsCredentialsGetDoes(t *testing.T) {
	t.Parallel()
	var asked string
	h := answering{username: "_token", secret: "eyJ.a.b", asked: &asked}
	want := credentials.HandleCommand(h, credentials.ActionGet, strings.NewReader("cgr.dev\n"), failingWriter{})
	require.NoError(t, want)
	assert.Equal(t, 0, serveGet(h, strings.NewReader("cgr.dev\n"), failingWriter{}))
}
