// Command docker-credential-cgr gives docker, go-containerregistry tools,
// skopeo/podman and the kubelet short-lived Chainguard registry credentials
// from the workload's ambient OIDC token. See README.md.
package main

import (
	"os"
	"runtime/debug"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version string

func main() {
	credentials.Name = "docker-credential-cgr"
	credentials.Package = "github.com/cgr-helper/docker-credential-cgr"
	credentials.Version = buildVersion()

	// credentials.Serve owns argv and the protocol's output rules (errors
	// on stdout, exit 1); our own subcommands will be dispatched before it.
	credentials.Serve(newHelper())
}

// newHelper returns the helper, or one that answers every request with the
// configuration error, so that version and help still work.
func newHelper() credentials.Helper {
	cfg, err := creds.LoadConfig(os.Getenv)
	if err != nil {
		return broken{err}
	}
	h, err := creds.New(cfg, creds.WithVersion(credentials.Version))
	if err != nil {
		return broken{err}
	}
	return h
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version // "v1.2.3" from go install, "(devel)" from a checkout
	}
	return "(devel)"
}

// broken is the helper when the configuration cannot work.
type broken struct{ err error }

func (b broken) Add(*credentials.Credentials) error { return b.err }
func (b broken) Delete(string) error                { return b.err }
func (b broken) Get(string) (string, string, error) { return "", "", b.err }
func (b broken) List() (map[string]string, error)   { return nil, b.err }
