package creds

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// projectedSource is a token file at a fixed path: the service-account
// token Kubernetes projects into the pod or onto the node. Its value is
// the path.
type projectedSource string

func (s projectedSource) String() string { return logsafe.Quote(string(s), pathLimit) }
func (projectedSource) Missing() string  { return "no such file" }

// Enabled is true for anything at the path but a missing file (or a link
// to one): a file that cannot be read is an error to report.
func (s projectedSource) Enabled() bool {
	_, err := os.Stat(string(s))
	return !errors.Is(err, fs.ErrNotExist)
}

func (s projectedSource) Provide(context.Context) (AmbientToken, error) {
	return readTokenFile(string(s), string(s))
}
