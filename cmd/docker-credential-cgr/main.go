// Command docker-credential-cgr gives docker, go-containerregistry tools,
// skopeo/podman and the kubelet short-lived Chainguard registry credentials
// from the workload's ambient OIDC token. See README.md.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/dockerconfig"
	"github.com/cgr-helper/docker-credential-cgr/pkg/doctor"
	"github.com/cgr-helper/docker-credential-cgr/pkg/kubelet"
)

func main() {
	growStack()
	credentials.Name = "docker-credential-cgr"
	credentials.Package = "github.com/cgr-helper/docker-credential-cgr"
	credentials.Version = buildVersion()

	if len(os.Args) < 2 {
		// A person, not a client: every client names an action. The exit
		// status stays the protocol's for a missing action.
		writeHelp(os.Stdout, os.Getenv)
		os.Exit(1)
	}
	os.Exit(dispatch(os.Args[1], os.Args[2:]))
}

// dispatch runs cmd: help and our own subcommands here, the docker
// protocol's actions through credentials.Serve, which owns argv and the
// protocol's output rules (errors on stdout, exit 1), or for a plain get
// through serveGet, which follows the same rules. Help is answered before
// any configuration is loaded, so it works when that is broken.
func dispatch(cmd string, args []string) int {
	switch cmd {
	case "help", "--help", "-h":
		if len(args) == 0 || args[0] == "help" || askedForHelp(args[:1]) {
			writeHelp(os.Stdout, os.Getenv)
			return 0
		}
		if !isCommand(args[0]) {
			fmt.Fprintf(os.Stderr, "%s: no command %s; the commands are listed by %s --help\n", credentials.Name, logsafe.Describe(args[0]), credentials.Name)
			return 2
		}
		return dispatch(args[0], []string{"--help"})
	case "kubelet":
		if askedForHelp(args) {
			writeKubeletHelp(os.Stdout)
			return 0
		}
		if fi, err := os.Stdin.Stat(); err == nil && interactive(fi) {
			// The kubelet always pipes a request in; a person at a
			// terminal would otherwise wait on a read that never ends.
			writeKubeletTerminal(os.Stderr)
			return 2
		}
		h, err := newHelper()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", credentials.Name, err)
			return 1
		}
		return kubelet.RunPlugin(h, os.Stdin, os.Stdout, os.Stderr)
	case "doctor":
		return doctor.Run(args, os.Getenv, os.Stdout, os.Stderr)
	case "configure-docker":
		return dockerconfig.Run(args, os.Getenv, os.Stdout, os.Stderr)
	case "configure-kubelet":
		// Flags and environment only: never the invoking user's
		// config file, which is theirs and not every node's.
		return kubelet.RunConfigure(args, os.Getenv, os.Stdout, os.Stderr)
	}
	if text, ok := actionHelp[cmd]; ok && askedForHelp(args) {
		_, _ = io.WriteString(os.Stdout, text)
		return 0
	}
	if h, err := newHelper(); err == nil {
		if cmd == string(credentials.ActionGet) && len(args) == 0 {
			return serveGet(h, os.Stdin, os.Stdout)
		}
		credentials.Serve(h)
	} else {
		// Answer every request with the configuration error, so that
		// version still works.
		credentials.Serve(broken{err})
	}
	return 0 // Serve exits on failure
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

// growStack grows the main goroutine's stack to 16 KiB in one step, while
// the stack holds two frames. A cached get needs between 8 and 16 KiB;
// left to itself the stack doubles from 2 KiB three times, the later times
// deep in the call chain, where each copy walks every frame's metadata:
// about 77,000 instructions, 7% of a cached get (callgrind, measured
// again once the entry and the claims were no longer decoded by
// reflection; growing to 8 KiB only saves 15,000). The stack is not
// shrunk before the process ends, since no garbage collection runs.
//
//go:noinline
func growStack() {
	var frame [12 << 10]byte
	keep(frame[:])
}

// keep is never inlined, so the compiler cannot drop growStack's frame.
//
//go:noinline
func keep([]byte) {}
