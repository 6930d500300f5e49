package kubelet

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// RunPlugin is the `kubelet` subcommand. Only the response goes to stdout;
// a failure is one line on stderr and exit status 1, which the kubelet logs
// before pulling without credentials.
func RunPlugin(p Provider, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), creds.DefaultTimeout)
	defer cancel()
	if err := Serve(ctx, p, stdin, stdout); err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: %v\n", ProviderName, err)
		return 1
	}
	return 0
}

const configureUsage = `usage: %s configure-kubelet [flags]

Prints the kubelet's CredentialProviderConfig for this plugin (one YAML
document, on stdout), or with --rbac the RBAC that service-account mode
needs. Each setting is a flag, else its environment variable; the invoking
user's config file is never read. Node setup: docs/kubernetes.md.

Exit status: 0 printed, 1 a setting the helper would refuse or the output
could not be written, 2 bad usage.

flags:
`

// RunConfigure is the `configure-kubelet` subcommand: it prints the
// CredentialProviderConfig for one kubelet release, or with --rbac the RBAC
// that service-account mode needs. Each plugin setting is a flag or, when
// the flag is not given, its environment variable (getenv); the admin's own
// config file is never read, so nothing personal goes into a config meant
// for every node. In service-account mode the RBAC also goes to stderr, so
// stdout stays one document the kubelet can load. On bad input nothing is
// printed on stdout: one line on stderr says what is valid, and the exit
// status is 2 (1 for a setting the helper would refuse). --help goes to
// stdout, exit 0.
func RunConfigure(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("configure-kubelet", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported as one line below
	mode := fs.String("mode", string(NodeMode), "where the ambient token comes from: node (the node's own token) or service-account (each pod's service-account token)")
	version := fs.String("kubelet-version", NewestVersion.String(), "the kubelet release the config is for: "+supportedList())
	rbac := fs.Bool("rbac", false, "print the node RBAC that service-account mode needs, instead of the config")
	var s Settings
	settings := []struct {
		flag, env, usage string
		dst              *Value
	}{
		{"identity", "CHAINGUARD_IDENTITY", "the identity to assume (node mode, and service accounts without the annotation)", &s.Identity},
		{"identity-token-file", "CHAINGUARD_IDENTITY_TOKEN", "path of the node's ambient token file (default " + creds.DefaultTokenPath + ")", &s.IdentityToken},
		{"issuer", "CHAINGUARD_ISSUER", "the STS base URL", &s.Issuer},
		{"audience", "CHAINGUARD_AUDIENCE", "the audience of the registry tokens", &s.Audience},
		{"registry", "CHAINGUARD_REGISTRY", "comma-separated registries to serve (default " + creds.DefaultRegistry + ")", &s.Registry},
		{"cache-dir", "CHAINGUARD_CACHE_DIR", "the plugin's token cache folder on the node (default " + DefaultCacheDir + ")", &s.CacheDir},
	}
	values := make([]*string, len(settings))
	for i, st := range settings {
		values[i] = fs.String(st.flag, "", st.usage+"; else $"+st.env)
	}
	fail := func(code int, format string, a ...any) int {
		_, _ = fmt.Fprintf(stderr, "configure-kubelet: "+format+"\n", a...)
		return code
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = fmt.Fprintf(stdout, configureUsage, ProviderName)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		return fail(2, "%s; see --help", logsafe.FlagError(err, args))
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %s; see --help", logsafe.Describe(fs.Arg(0)))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *rbac {
		var others []string
		for name := range set {
			if name != "rbac" {
				others = append(others, "--"+name)
			}
		}
		if len(others) > 0 {
			return fail(2, "--rbac prints the RBAC alone and takes no other flag (got %s)", strings.Join(others, ", "))
		}
		if err := WriteRBAC(stdout); err != nil {
			return fail(1, "%v", err)
		}
		return 0
	}
	m, err := ParseMode(*mode)
	if err != nil {
		return fail(2, "--mode: %v", err)
	}
	v, err := ParseVersion(*version)
	if err != nil {
		return fail(2, "--kubelet-version: %v", err)
	}
	for i, st := range settings {
		switch {
		case set[st.flag]:
			*st.dst = Value{*values[i], "--" + st.flag}
		case getenv(st.env) != "":
			*st.dst = Value{getenv(st.env), "$" + st.env}
		}
	}
	opts, err := OptionsFor(m, v, s)
	if err != nil {
		return fail(1, "%v", err)
	}
	release := "kubelet release: from --kubelet-version"
	if !set["kubelet-version"] {
		release = "kubelet release: not set: the newest, " + NewestVersion.String() + "; give --kubelet-version for older nodes"
	}
	opts.Notes = append([]string{release}, opts.Notes...)
	// Written whole or not at all: the output is usually piped to a file
	// the kubelet reads.
	var out strings.Builder
	if err := WriteConfig(&out, opts); err != nil {
		return fail(1, "%v", err)
	}
	if _, err := io.WriteString(stdout, out.String()); err != nil {
		return fail(1, "%v", err)
	}
	if m == ServiceAccountMode {
		_, _ = fmt.Fprintln(stderr, "# Service-account mode also needs this RBAC in the cluster (print it alone with --rbac):")
		_ = WriteRBAC(stderr)
	}
	return 0
}
