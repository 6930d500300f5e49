package kubelet

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// RunPlugin is the `kubelet` subcommand. Only the response goes to stdout;
// a failure is one line on stderr and exit status 1, which the kubelet logs
// before pulling without credentials.
func RunPlugin(h *creds.Helper, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), creds.DefaultTimeout)
	defer cancel()
	if err := Serve(ctx, h, stdin, stdout); err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: %v\n", ProviderName, err)
		return 1
	}
	return 0
}

// RunConfigure is the `configure-kubelet` subcommand: it prints the
// CredentialProviderConfig, or with --rbac the RBAC that service-account
// mode needs. In service-account mode the RBAC also goes to stderr, so
// stdout stays one document the kubelet can load. The plugin's cache folder
// is CHAINGUARD_CACHE_DIR if set, else DefaultCacheDir.
func RunConfigure(args []string, cfg creds.Config, getenv func(string) string, stdout, stderr io.Writer) int {
	cacheDir := cmp.Or(getenv("CHAINGUARD_CACHE_DIR"), DefaultCacheDir)
	fs := flag.NewFlagSet("configure-kubelet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", string(NodeMode), "where the ambient token comes from: node (the node's own token) or service-account (each pod's service-account token, kubelet 1.33+)")
	rbac := fs.Bool("rbac", false, "print the node RBAC that service-account mode needs, instead of the config")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "configure-kubelet: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *rbac {
		if err := WriteRBAC(stdout); err != nil {
			_, _ = fmt.Fprintln(stderr, "configure-kubelet:", err)
			return 1
		}
		return 0
	}
	opts, err := OptionsFor(cfg, Mode(*mode), cacheDir)
	if err == nil {
		err = WriteConfig(stdout, opts)
	}
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "configure-kubelet:", err)
		return 1
	}
	if Mode(*mode) == ServiceAccountMode {
		_, _ = fmt.Fprintln(stderr, "# Service-account mode also needs this RBAC in the cluster (print it alone with --rbac):")
		_ = WriteRBAC(stderr)
	}
	return 0
}
