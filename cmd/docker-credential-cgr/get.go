package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker-credential-helpers/credentials"
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

// get is credentials.Get with the answer written by appendJSONString.
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
	b = appendJSONString(append(b, `{"ServerURL":`...), serverURL)
	b = appendJSONString(append(b, `,"Username":`...), username)
	b = appendJSONString(append(b, `,"Secret":`...), secret)
	// As credentials.Get: a failed write is not reported (on a closed
	// stdout, Go's SIGPIPE ends the process anyway).
	_, _ = out.Write(append(b, "}\n"...))
	return nil
}

// appendJSONString appends s as json.Encoder writes a string: a token,
// plain ASCII, is copied; anything encoding/json would escape (quotes,
// backslashes, control characters, the HTML characters <, > and &, and
// everything outside ASCII) is left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; plainJSON[c>>6]&(1<<(c&63)) == 0 {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainJSON has bit c&63 of word c>>6 set for each byte c that json.Encoder
// writes as itself: printable ASCII but for ", &, <, > and \. A bit set,
// because the loop above runs over every byte of a token.
var plainJSON = [4]uint64{
	0xffffffff << 32 &^ (1<<'"' | 1<<'&' | 1<<'<' | 1<<'>'),
	(1<<63 - 1) &^ (1 << ('\\' - 64)),
}
