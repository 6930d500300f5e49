package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
	"github.com/cgr-helper/docker-credential-cgr/pkg/kubelet"
)

// command is one line of the help's command list.
type command struct{ name, summary string }

// commandGroups is the help's command list, in the order a person needs
// it. help <name> runs <name> --help for each name here.
var commandGroups = []struct {
	title    string
	commands []command
}{
	{"The docker protocol (docker, crane, ko, skopeo and podman run these)", []command{
		{"get", "print a registry token for the registry on stdin, as JSON"},
		{"store", "run by docker login: succeeds, stores nothing"},
		{"erase", "run by docker logout: succeeds, erases nothing"},
		{"list", "print the served registries as JSON"},
		{"version", "print the version (also --version, -v)"},
	}},
	{"Kubernetes", []command{
		{"kubelet", "the image credential provider plugin; the kubelet runs it"},
		{"configure-kubelet", "print the kubelet's config for this plugin (YAML)"},
	}},
	{"Setup and troubleshooting", []command{
		{"configure-docker", "point docker's config.json (credHelpers) at this helper"},
		{"doctor", "check the setup and say why a pull fails"},
		{"help", "this help; help <command> is <command> --help"},
	}},
}

// isCommand reports whether name is in the help's command list.
func isCommand(name string) bool {
	for _, g := range commandGroups {
		if slices.ContainsFunc(g.commands, func(c command) bool { return c.name == name }) {
			return true
		}
	}
	return false
}

// askedForHelp reports whether args ask for a command's help, as the flag
// package's -h, -help and --help do.
func askedForHelp(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" })
}

// interactive reports whether stdin (described by fi) is a terminal or
// another device rather than a pipe or file: nobody is about to write a
// request there.
func interactive(fi os.FileInfo) bool {
	return fi.Mode()&os.ModeCharDevice != 0
}

// writeHelp writes the top-level help. getenv only fills in where the
// config file is for this user; nothing is loaded, so help works while
// the configuration is broken. The defaults shown are this user's.
func writeHelp(w io.Writer, getenv func(string) string) {
	var b strings.Builder
	b.WriteString(`Usage: docker-credential-cgr <command> [flags]

Chainguard registry credentials from the workload's own OIDC token (a
Kubernetes service-account token, a CI job's token), exchanged at the
Chainguard STS for a registry token that lasts an hour. No stored secret.
`)
	for _, g := range commandGroups {
		fmt.Fprintf(&b, "\n%s:\n", g.title)
		for _, c := range g.commands {
			fmt.Fprintf(&b, "  %-19s %s\n", c.name, c.summary)
		}
	}
	cacheDir := "none without a home folder"
	if dir, err := os.UserCacheDir(); err == nil {
		cacheDir = filepath.Join(dir, "docker-credential-cgr")
	}
	b.WriteString("\nEnvironment (wins over the config file):\n")
	for _, v := range [][2]string{
		{"CHAINGUARD_IDENTITY", "identity id to assume (chainctl iam identities list)"},
		{"CHAINGUARD_IDENTITY_TOKEN", "the ambient OIDC token, or a file holding it; default"},
		{"", creds.DefaultTokenPath + ", then GitHub Actions"},
		{"CHAINGUARD_ISSUER", "STS base URL (default " + exchange.DefaultIssuer + ")"},
		{"CHAINGUARD_REGISTRY", "registries served (default " + creds.DefaultRegistry + ")"},
		{"CHAINGUARD_AUDIENCE", "audience of the registry tokens (default " + creds.DefaultAudience + ")"},
		{"CHAINGUARD_CACHE_DIR", "token cache folder (default " + cacheDir + ")"},
		{"CHAINGUARD_NO_CACHE", "true: no token cache"},
		{"CHAINGUARD_DEBUG", "true: debug lines on stderr (never a token)"},
		{"DOCKER_CONFIG", "folder of docker's config.json (default ~/.docker)"},
	} {
		fmt.Fprintf(&b, "  %-25s %s\n", v[0], v[1])
	}
	where := "$XDG_CONFIG_HOME/docker-credential-cgr/config.json, else under ~/.config"
	if p := creds.ConfigPath(getenv); p != "" {
		where = p
	}
	fmt.Fprintf(&b, `
Config file: %s
  written by configure-docker; keys: identity, identity_token, issuer,
  audience, registries, cache_dir, no_cache (an unknown key is an error).

docker shows a failed pull only as "unauthorized": it drops the helper's
error. To see it, run doctor, or ask the helper as docker does:
  echo cgr.dev | docker-credential-cgr get

Docs: README.md and docs/reference.md in
  https://github.com/cgr-helper/docker-credential-cgr
`, where)
	_, _ = io.WriteString(w, b.String())
}

// actionHelp is each docker protocol action's --help. credentials.Serve
// has none, and a person trying an action by hand needs to know what to
// put on stdin.
var actionHelp = map[string]string{
	"get": `Usage: echo <registry> | docker-credential-cgr get

Reads a registry host or URL on stdin and prints credentials for it:
  {"ServerURL":"<as read>","Username":"_token","Secret":"<registry token>"}
docker, crane, ko, skopeo and podman run it before they pull from a registry
that credHelpers in docker's config.json sends to "cgr" (configure-docker
writes that entry). For a served registry the token comes from the cache, or
from exchanging the ambient OIDC token at the STS. Any other registry is
answered "credentials not found in native keychain", exit 1, and the client
goes on without credentials.

A failure is one line on stdout, exit 1. docker drops it and reports only
"unauthorized", so ask the helper yourself to see the reason (a success
prints a live registry token: keep it to yourself), or run doctor:
  echo cgr.dev | docker-credential-cgr get
`,
	"store": `Usage: echo '{"ServerURL":"cgr.dev","Username":"x","Secret":"x"}' | docker-credential-cgr store

docker login runs it to save credentials. For a served registry it succeeds
and stores nothing: every token is minted when it is needed, so there is
nothing to keep. Any other registry is "credentials not found in native
keychain", exit 1. The JSON needs a ServerURL and a Username.
`,
	"erase": `Usage: echo cgr.dev | docker-credential-cgr erase

docker logout runs it to remove saved credentials. For a served registry it
succeeds: nothing was stored. Any other registry is "credentials not found
in native keychain", exit 1.
`,
	"list": `Usage: docker-credential-cgr list

Prints the served registries, each with the username _token, as JSON:
  {"cgr.dev":"_token"}
Clients run it to learn which registries the helper has credentials for.
Wildcards (*.cgr.dev) are left out. It makes no network call.
`,
	"version": `Usage: docker-credential-cgr version (or --version, -v)

Prints the helper's name, module and version, as docker-credential-helpers
programs do. It works even when the configuration is broken.
`,
}

// kubeletTry is a request a person can pipe into the kubelet subcommand.
const kubeletTry = `echo '{"apiVersion":"` + kubelet.APIVersion + `","kind":"CredentialProviderRequest","image":"cgr.dev/chainguard/static"}' | docker-credential-cgr kubelet`

func writeKubeletHelp(w io.Writer) {
	_, _ = io.WriteString(w, `Usage: docker-credential-cgr kubelet < request.json

The kubelet's image credential provider plugin. The kubelet runs it for an
image that matches matchImages in its CredentialProviderConfig (which
configure-kubelet prints): it writes a CredentialProviderRequest to stdin
and reads a CredentialProviderResponse from stdout. Settings are read as
for get (environment, then the config file of the user the kubelet runs
as). A failure is one line on stderr, exit 1; the kubelet logs it and pulls
without credentials.

To try it by hand, as the kubelet would:
  `+kubeletTry+`

Node setup: docs/kubernetes.md.
`)
}

func writeKubeletTerminal(w io.Writer) {
	_, _ = io.WriteString(w, `docker-credential-cgr: kubelet reads a CredentialProviderRequest on stdin, and stdin is a terminal (or a device such as /dev/null), not a pipe: the kubelet runs this command and writes the request itself.
To try it by hand, as the kubelet would:
  `+kubeletTry+`
See docker-credential-cgr kubelet --help.
`)
}
