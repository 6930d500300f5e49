// Command docker-credential-cgr gives docker, go-containerregistry tools,
// skopeo/podman and the kubelet short-lived Chainguard registry credentials
// from the workload's ambient OIDC token. See README.md.
package main

import (
	"fmt"
	"os"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/dockerconfig"
	"github.com/cgr-helper/docker-credential-cgr/pkg/kubelet"
)

func main() {
	credentials.Name = "docker-credential-cgr"
	credentials.Package = "github.com/cgr-helper/docker-credential-cgr"
	credentials.Version = buildVersion()

	// Our own subcommands first: credentials.Serve owns argv and the
	// docker protocol's output rules (errors on stdout, exit 1).
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "kubelet":
			h, err := newHelper()
			exitOn(err)
			os.Exit(kubelet.RunPlugin(h, os.Stdin, os.Stdout, os.Stderr))
		case "configure-docker":
			os.Exit(dockerconfig.Run(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
		case "configure-kubelet":
			// Flags and environment only: never the invoking user's
			// config file, which is theirs and not every node's.
			os.Exit(kubelet.RunConfigure(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
		}
	}
	if h, err := newHelper(); err == nil {
		credentials.Serve(h)
	} else {
		// Answer every request with the configuration error, so that
		// version and help still work.
		credentials.Serve(broken{err})
	}
}

// exitOn ends one of our own subcommands on err, with the reason on stderr.
func exitOn(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", credentials.Name, err)
		os.Exit(1)
	}
}

func newHelper() (*creds.Helper, error) {
	cfg, err := creds.LoadConfig(os.Getenv)
	if err != nil {
		return nil, err
	}
	return creds.New(cfg, creds.WithVersion(credentials.Version))
}

// broken is the helper when the configuration cannot work.
type broken struct{ err error }

func (b broken) Add(*credentials.Credentials) error { return b.err }
func (b broken) Delete(string) error                { return b.err }
func (b broken) Get(string) (string, string, error) { return "", "", b.err }
func (b broken) List() (map[string]string, error)   { return nil, b.err }
