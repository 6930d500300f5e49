//go:build linux

package child

import (
	"context"
	"net"
	"os"
	"regexp"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// JWTLike matches a compact JWS: what every ambient, STS and registry token
// in the suites is. It is for asserting that output holds no token.
var JWTLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)

// Redact hides anything token-like in s before a suite prints it: every
// run that starts like a JWT, whole or cut, as the helper's own failure
// record does (wider than JWTLike, so a cut token or a lone part goes too).
func Redact(s string) string { return logsafe.RedactJWTs(s) }

// Tail is the last limit bytes of a log file, redacted.
func Tail(path string, limit int) string {
	b, err := os.ReadFile(path) //nolint:gosec // G304: a log the suite wrote
	if err != nil {
		return err.Error()
	}
	// Redacted whole, then cut: a cut first could keep the tail of a
	// token without the "eyJ" that marks it.
	s := Redact(string(b))
	if len(s) > limit {
		s = s[len(s)-limit:]
	}
	return s
}

// FreePort is a loopback port free at the time of asking.
func FreePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	// Closing is what frees the port for the program; if that fails, the
	// port is not free.
	return port, l.Close()
}
