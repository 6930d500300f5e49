package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/cgr-helper/docker-credential-cgr/internal/jsonstr"
)

// serveGet answers the protocol's get exactly as credentials.Serve does,
// byte for byte (FuzzServeGetIsCredentialsServe holds it to that), except
// that it writes the answer's JSON by hand. credentials.Get encodes it with
// encoding/json, by reflection, and in a process that lives for one call
// that first use cost a cached get 62,000 instructions of its 1.06 million
// (callgrind). Every other action, and get with arguments, still
// goes through credentials.Serve.
func serveGet(h credentials.Helper, in io.Reader, out io.Writer) int {
	if err := get(h, in, out); err != nil {
		_, _ = fmt.Fprintln(out, err)
		return 1
	}
	return 0
}

// get is credentials.Get with the answer written by jsonstr.Append.
func get(h credentials.Helper, in io.Reader, out io.Writer) error {
	// The request is read as credentials.Get reads it: every line, joined.
	scanner := bufio.NewScanner(in)
	var request bytes.Buffer
	for scanner.Scan() {
		request.Write(scanner.Bytes())
	}
	if err := scanner.Err(); err != nil {
		return err
	}
	serverURL := strings.TrimSpace(request.String())
	if serverURL == "" {
		return credentials.NewErrCredentialsMissingServerURL()
	}
	username, secret, err := h.Get(serverURL)
	if err != nil {
		return err
	}
	// The fields of credentials.Credentials, in its order.
	b := make([]byte, 0, len(`{"ServerURL":"","Username":"","Secret":""}`+"\n")+len(serverURL)+len(username)+len(secret))
	b = jsonstr.Append(append(b, `{"ServerURL":`...), serverURL)
	b = jsonstr.Append(append(b, `,"Username":`...), username)
	b = jsonstr.Append(append(b, `,"Secret":`...), secret)
	// As credentials.Get: a failed write is not reported (on a closed
	// stdout, Go's SIGPIPE ends the process anyway).
	_, _ = out.Write(append(b, "}\n"...))
	return nil
}
