// Command demo runs the product's main job in a local sandbox, offline: a
// fake cluster issuer mints a projected service-account token, a fake
// Chainguard STS exchanges it, and a token-protected registry serves an
// image that go-containerregistry pulls through the built
// docker-credential-cgr binary, found via credHelpers exactly as crane
// finds it. `make demo` runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

func main() {
	helper := flag.String("helper", "bin/docker-credential-cgr", "the built docker-credential-cgr binary")
	flag.Parse()
	start := time.Now()
	if err := run(*helper); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
	fmt.Printf("\ndemo passed in %s\n", time.Since(start).Round(time.Millisecond))
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run(helper string) error {
	helper, err := findHelper(helper)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "cgr-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(work); err != nil {
			fmt.Fprintln(os.Stderr, "demo: cleaning up:", err)
		}
	}()

	step("starting the sandbox: cluster OIDC issuer, Chainguard-style STS, token-protected registry")
	sb, err := sandbox.Start()
	if err != nil {
		return err
	}
	defer sb.Close()
	fmt.Printf("    issuer   %s\n    STS      %s\n    registry %s (token realm %s/token)\n", sb.Issuer.URL(), sb.STS.URL(), sb.Registry.Host(), sb.Registry.URL())
	ref, pushed, err := pushImage(sb)
	if err != nil {
		return err
	}

	step("the pod's projected service-account token (audience %s)", sandbox.EnforceAudience)
	tokenFile, err := writeAmbientToken(sb, work)
	if err != nil {
		return err
	}

	step("configuring docker: credHelpers points %s at docker-credential-cgr", sb.Registry.Host())
	binDir, dockerConfig, err := installHelper(helper, work, sb.Registry.Host())
	if err != nil {
		return err
	}
	if err := exportHelperEnv(sb, work, binDir, dockerConfig, tokenFile); err != nil {
		return err
	}

	step("control: an anonymous pull is refused")
	if err := checkAnonymousRefused(ref); err != nil {
		return err
	}

	step("pull 1: go-containerregistry's DefaultKeychain runs docker-credential-cgr get")
	if err := pullAndCheck(sb, ref, pushed, 1); err != nil {
		return err
	}

	step("pull 2: the helper answers from its cache, no exchange")
	return pullAndCheck(sb, ref, pushed, 1)
}

// findHelper is the helper's absolute path, once it is known to exist.
func findHelper(helper string) (string, error) {
	abs, err := filepath.Abs(helper)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("%w; build it first with `make build`", err)
	}
	return abs, nil
}

// pushImage pushes one random image to the sandbox registry and returns its
// reference and digest.
func pushImage(sb *sandbox.Sandbox) (ref, digest string, err error) {
	ref = sb.Registry.Host() + "/chainguard/static:latest"
	digest, err = sb.Registry.PushRandomImage("chainguard/static", "latest")
	if err != nil {
		return "", "", err
	}
	fmt.Printf("    pushed   %s@%s\n", ref, digest)
	return ref, digest, nil
}

// writeAmbientToken mints the pod's service-account token, writes it where
// the helper will read it and prints its claims; it returns the file.
func writeAmbientToken(sb *sandbox.Sandbox, work string) (string, error) {
	ambient, err := sb.Issuer.MintServiceAccountToken("demo", "puller")
	if err != nil {
		return "", err
	}
	tokenFile := filepath.Join(work, "oidc-token") // stands in for /var/run/chainguard/oidc/oidc-token
	if err := os.WriteFile(tokenFile, []byte(ambient), 0o600); err != nil {
		return "", err
	}
	return tokenFile, printClaims(ambient)
}

// installHelper links the helper into a folder for PATH and writes a docker
// config whose credHelpers sends host to it, as a user would.
func installHelper(helper, work, host string) (binDir, dockerConfig string, err error) {
	binDir = filepath.Join(work, "bin")
	dockerConfig = filepath.Join(work, "docker")
	for _, d := range []string{binDir, dockerConfig} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", "", err
		}
	}
	if err := os.Symlink(helper, filepath.Join(binDir, "docker-credential-cgr")); err != nil {
		return "", "", err
	}
	cfg, _ := json.MarshalIndent(map[string]any{"credHelpers": map[string]string{host: "cgr"}}, "    ", "  ")
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), cfg, 0o600); err != nil {
		return "", "", err
	}
	fmt.Printf("    %s/config.json:\n    %s\n", dockerConfig, cfg)
	return binDir, dockerConfig, nil
}

// exportHelperEnv sets this process's environment for the helper and prints
// its CHAINGUARD_ variables. The helper is a child process and inherits this
// environment, exactly as it would inherit a pod's or a CI job's.
func exportHelperEnv(sb *sandbox.Sandbox, work, binDir, dockerConfig, tokenFile string) error {
	env := map[string]string{
		"PATH":                      binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME":                      filepath.Join(work, "home"),
		"DOCKER_CONFIG":             dockerConfig,
		"CHAINGUARD_ISSUER":         sb.STS.URL(),
		"CHAINGUARD_REGISTRY":       sb.Registry.Host(),
		"CHAINGUARD_IDENTITY":       sandbox.DefaultIdentity,
		"CHAINGUARD_IDENTITY_TOKEN": tokenFile,
		"CHAINGUARD_CACHE_DIR":      filepath.Join(work, "cache"),
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if err := os.Setenv(k, env[k]); err != nil {
			return err
		}
		if strings.HasPrefix(k, "CHAINGUARD_") {
			fmt.Printf("    %s=%s\n", k, env[k])
		}
	}
	return nil
}

// checkAnonymousRefused is the control: without the helper the registry
// must refuse the pull, or the pulls below prove nothing.
func checkAnonymousRefused(ref string) error {
	_, err := pull(ref, authn.Anonymous)
	if err == nil {
		return errors.New("the registry let an anonymous client pull; the sandbox is not protecting it")
	}
	fmt.Printf("    refused: %s\n", firstLine(err))
	return nil
}

// pullAndCheck pulls ref through the default keychain and checks the digest
// and how many exchanges the STS has made in all.
func pullAndCheck(sb *sandbox.Sandbox, ref, want string, wantExchanges int) error {
	before := sb.STS.Exchanges()
	t0 := time.Now()
	got, err := pullWithKeychain(ref)
	if err != nil {
		return err
	}
	fmt.Printf("    pulled %s in %s\n", got, time.Since(t0).Round(time.Millisecond))
	if got != want {
		return fmt.Errorf("pulled digest %s, pushed %s", got, want)
	}
	n := sb.STS.Exchanges()
	if last := sb.STS.LastRequest(); n > before {
		fmt.Printf("    the STS saw: %s /sts/exchange, bearer ambient token: %v, aud=%s identity=%s, User-Agent %q\n",
			last.Method, last.Bearer, strings.Join(last.PostForm["aud"], ","), last.PostForm.Get("identity"), last.UserAgent)
	}
	if n == before {
		fmt.Println("    no STS request: the registry token came from the helper's cache")
	}
	fmt.Printf("    STS exchanges so far: %d, registry token requests so far: %d\n", n, sb.Registry.TokenRequests())
	if n != wantExchanges {
		return fmt.Errorf("the STS made %d exchanges, want %d", n, wantExchanges)
	}
	return nil
}

func pullWithKeychain(ref string) (string, error) {
	auth, err := authn.DefaultKeychain.Resolve(mustRegistry(ref))
	if err != nil {
		return "", err
	}
	if auth == authn.Anonymous {
		return "", errors.New("the default keychain found no credentials: credHelpers not picked up")
	}
	return pull(ref, auth)
}

func mustRegistry(ref string) name.Registry {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		panic(err)
	}
	return r.Context().Registry
}

// pull fetches the manifest and every layer, and returns the digest.
func pull(ref string, auth authn.Authenticator) (string, error) {
	return sandbox.Pull(context.Background(), ref, auth)
}

func printClaims(raw string) error {
	c, err := exchange.ParseClaims(raw)
	if err != nil {
		return err
	}
	fmt.Printf("    iss %v\n    sub %v\n    aud %v\n    exp %s (in %s)\n", c.Issuer, c.Subject, c.Audience,
		c.Expiry.UTC().Format(time.RFC3339), time.Until(c.Expiry).Round(time.Second))
	return nil
}

func firstLine(err error) string {
	var te *transport.Error
	if errors.As(err, &te) {
		return fmt.Sprintf("HTTP %d", te.StatusCode)
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
