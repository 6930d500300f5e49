package main

// Integration tests: the real binary, run as a subprocess exactly as docker
// runs it, against the sandbox's issuer, STS and registry.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

const testVersion = "v0.0.0-integration"

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cgr-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "docker-credential-cgr")
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+testVersion, "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binary:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "removing the built binary:", err)
	}
	os.Exit(code)
}

// world is one sandbox plus the environment the binary runs in. The binary
// sees env only, never this process's environment, so each test builds its
// own world and runs in parallel with the others.
type world struct {
	t       *testing.T
	sb      *sandbox.Sandbox
	env     map[string]string
	ambient string // the ambient token, to prove it never leaks
	dir     string

	mu     sync.Mutex
	issued []string // every registry token seen, to prove none leaks
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sb, err := sandbox.Start()
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	dir := t.TempDir()
	w := &world{t: t, sb: sb, dir: dir}
	w.ambient = w.mint()
	tokenFile := filepath.Join(dir, "oidc-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(w.ambient), 0o600))
	w.env = map[string]string{
		"PATH":                      os.Getenv("PATH"),
		"HOME":                      filepath.Join(dir, "home"),
		"CHAINGUARD_ISSUER":         sb.STS.URL(),
		"CHAINGUARD_REGISTRY":       sb.Registry.Host(),
		"CHAINGUARD_IDENTITY":       sandbox.DefaultIdentity,
		"CHAINGUARD_IDENTITY_TOKEN": tokenFile,
		"CHAINGUARD_CACHE_DIR":      filepath.Join(dir, "cache"),
	}
	return w
}

func (w *world) mint(opts ...sandbox.TokenOption) string {
	w.t.Helper()
	tok, err := w.sb.Issuer.MintServiceAccountToken("default", "puller", opts...)
	require.NoError(w.t, err)
	return tok
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary with args and stdin, and checks the rules that hold
// for every run: no ambient or issued token on stderr, and on failure none
// on stdout either.
func (w *world) run(stdin string, args ...string) result {
	w.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	for k, v := range w.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else {
		require.NoError(w.t, err)
	}
	w.checkNoLeak(r)
	return r
}

func (w *world) checkNoLeak(r result) {
	w.t.Helper()
	w.mu.Lock()
	secrets := append([]string{w.ambient}, w.issued...)
	w.mu.Unlock()
	for _, s := range secrets {
		// Assert on a bool: a failing assert.NotContains would print the token.
		assert.False(w.t, strings.Contains(r.stderr, s), "a token leaked to stderr")
		if r.code != 0 {
			assert.False(w.t, strings.Contains(r.stdout, s), "a token leaked to stdout in a failure")
		}
	}
}

// get runs "get" for serverURL, expects success, and returns the secret
// after checking the protocol's JSON and that the STS signed the token.
func (w *world) get(serverURL string) string {
	w.t.Helper()
	r := w.run(serverURL+"\n", "get")
	require.Equal(w.t, 0, r.code, "get failed: %s", r.stdout)
	var c struct{ ServerURL, Username, Secret string }
	require.NoError(w.t, json.Unmarshal([]byte(r.stdout), &c), "stdout is the protocol's JSON only")
	assert.Equal(w.t, strings.TrimSpace(serverURL), c.ServerURL)
	assert.Equal(w.t, "_token", c.Username)
	sub, err := w.sb.STS.VerifyToken(c.Secret, sandbox.RegistryAudience)
	require.NoError(w.t, err, "the secret is a registry token the STS signed")
	assert.Equal(w.t, sandbox.DefaultIdentity, sub)
	w.mu.Lock()
	w.issued = append(w.issued, c.Secret)
	w.mu.Unlock()
	return c.Secret
}

func TestGetServerURLVariants(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	host := w.sb.Registry.Host()
	first := w.get(host)
	for _, u := range []string{"http://" + host, "https://" + host + "/", host + "/", "  " + host + "  "} {
		assert.Equal(t, first, w.get(u), "%q is the same registry, served from the cache", u)
	}
	assert.Equal(t, 1, w.sb.STS.Exchanges())
}

func TestGetOtherRegistryIsNotFound(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// notFound checks the protocol's not-found answer without printing
	// stdout when it is not: a wrong answer may hold a token.
	notFound := func(serverURL string) {
		t.Helper()
		r := w.run(serverURL, "get")
		if r.code != 1 || r.stdout != "credentials not found in native keychain\n" {
			t.Errorf("get %s: exit %d and %d bytes of stdout (not shown), want exit 1 and the not-found answer", serverURL, r.code, len(r.stdout))
		}
	}
	for _, u := range []string{"index.docker.io", "https://index.docker.io/v1/", "cgr.dev"} {
		notFound(u)
	}
	assert.Equal(t, 0, w.sb.STS.Requests(), "no exchange for a registry we do not serve")

	// With the default registries, cgr.dev and its subdomains are served,
	// and nothing else: no exchange for another registry or a look-alike
	// host, and a registry token for cgr.dev and for a subdomain.
	delete(w.env, "CHAINGUARD_REGISTRY")
	for _, u := range []string{"ghcr.io", "evilcgr.dev", "cgr.dev.example.com", "https://index.docker.io/v1/"} {
		notFound(u)
	}
	assert.Equal(t, 0, w.sb.STS.Requests(), "no exchange for a registry outside the defaults")
	// w.get requires exit 0, username _token and a secret the STS signed
	// for audience cgr.dev.
	w.get("cgr.dev")
	w.get("https://eu.cgr.dev/")
	assert.Positive(t, w.sb.STS.Exchanges(), "the served hosts were answered by an exchange")
}

func TestStoreEraseList(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	host := w.sb.Registry.Host()
	creds := func(u string) string {
		return fmt.Sprintf(`{"ServerURL":%q,"Username":"someone","Secret":"something"}`, u)
	}

	r := w.run(creds(host), "store")
	assert.Equal(t, result{}, r, "docker login to a served registry succeeds and stores nothing")
	r = w.run(creds("ghcr.io"), "store")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "credentials not found in native keychain\n", r.stdout)

	r = w.run(host, "erase")
	assert.Equal(t, result{}, r, "docker logout succeeds")
	r = w.run("ghcr.io", "erase")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "credentials not found in native keychain\n", r.stdout)

	r = w.run("", "list")
	require.Equal(t, 0, r.code)
	assert.JSONEq(t, fmt.Sprintf(`{%q:"_token"}`, host), r.stdout)

	delete(w.env, "CHAINGUARD_REGISTRY")
	r = w.run("", "list")
	assert.JSONEq(t, `{"cgr.dev":"_token"}`, r.stdout)
	assert.Equal(t, 0, w.sb.STS.Requests())
}

func TestVersion(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.run("", "version")
	assert.Equal(t, result{stdout: "docker-credential-cgr (github.com/cgr-helper/docker-credential-cgr) " + testVersion + "\n"}, r)
}

func TestCacheHitMakesNoExchange(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	host := w.sb.Registry.Host()
	a := w.get(host)
	b := w.get(host)
	assert.Equal(t, a, b)
	assert.Equal(t, 1, w.sb.STS.Requests(), "the second get is a cache hit")

	entries, err := filepath.Glob(filepath.Join(w.env["CHAINGUARD_CACHE_DIR"], "*.json"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	fi, err := os.Stat(entries[0])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	w.env["CHAINGUARD_NO_CACHE"] = "true"
	w.get(host)
	assert.Equal(t, 2, w.sb.STS.Requests(), "CHAINGUARD_NO_CACHE skips the cache")
}

func TestTokensInsideTheMarginAreNotReused(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.sb.STS.SetTokenLifetime(4 * time.Minute) // under the 5-minute margin
	host := w.sb.Registry.Host()
	a := w.get(host)
	b := w.get(host)
	assert.NotEqual(t, a, b)
	assert.Equal(t, 2, w.sb.STS.Exchanges(), "a token with under 5 minutes left is not served from the cache")
}

func TestParallelColdGetsMakeOneExchange(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	host := w.sb.Registry.Host()
	const n = 32
	secrets := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { secrets[i] = w.get(host) })
	}
	wg.Wait()
	assert.Equal(t, 1, w.sb.STS.Requests(), "32 parallel cold gets must make exactly one exchange")
	for _, s := range secrets {
		assert.True(t, s == secrets[0], "every process answers with the one token")
	}
}

func TestCorruptCacheEntryIsReplaced(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	host := w.sb.Registry.Host()
	w.get(host)
	entries, err := filepath.Glob(filepath.Join(w.env["CHAINGUARD_CACHE_DIR"], "*.json"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.NoError(t, os.WriteFile(entries[0], []byte(`{"token":"eyJhbGciOi`), 0o600))

	w.get(host)
	assert.Equal(t, 2, w.sb.STS.Exchanges(), "the corrupt entry was ignored")
	w.get(host)
	assert.Equal(t, 2, w.sb.STS.Exchanges(), "and replaced by a good one")
}

func TestUnwritableCacheFolderStillAnswers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	blocker := filepath.Join(w.dir, "not-a-folder")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	// Even root cannot make a folder under a file.
	w.env["CHAINGUARD_CACHE_DIR"] = filepath.Join(blocker, "cache")
	host := w.sb.Registry.Host()
	w.get(host)
	w.get(host)
	assert.Equal(t, 2, w.sb.STS.Exchanges(), "no cache, but no failure")
}

func TestSTSTransientFailuresAreRetried(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.sb.STS.InjectFaults(
		sandbox.Fault{Status: 503, Message: "try later"},
		sandbox.Fault{Status: 503, Message: "try later"},
	)
	w.get(w.sb.Registry.Host())
	assert.Equal(t, 3, w.sb.STS.Requests())
	assert.Equal(t, 1, w.sb.STS.Exchanges())
}

func TestSTSRejectionShowsTheServersMessage(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: "the identity does not trust this token's subject"})
	r := w.run(w.sb.Registry.Host(), "get")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "the identity does not trust this token's subject")
	assert.Contains(t, r.stdout, "sub=system:serviceaccount:default:puller", "names the token's subject so an identity can be made to match")
	assert.Contains(t, r.stdout, "chainctl iam identities create")
	assert.Equal(t, 1, w.sb.STS.Requests(), "a 403 is not retried")
	assert.Equal(t, 1, strings.Count(r.stdout, "\n"), "one line")
}

func TestSTSUnknownIdentity(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.env["CHAINGUARD_IDENTITY"] = "no-such-identity"
	r := w.run(w.sb.Registry.Host(), "get")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "no-such-identity")
	assert.Contains(t, r.stdout, "CHAINGUARD_IDENTITY")
}

func TestSTSGarbage200(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.sb.STS.InjectFaults(sandbox.Fault{Status: 200, Body: "<html>captive portal</html>"})
	r := w.run(w.sb.Registry.Host(), "get")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "not with a usable token")
	assert.Contains(t, r.stdout, "CHAINGUARD_ISSUER")
	assert.NotContains(t, r.stdout, "captive portal", "the body is not echoed")
}

func TestSTSUnreachable(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.env["CHAINGUARD_ISSUER"] = "http://127.0.0.1:1"
	r := w.run(w.sb.Registry.Host(), "get")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "cannot reach the STS at http://127.0.0.1:1")
}

func TestAmbientTokenProblems(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	host := w.sb.Registry.Host()

	t.Run("missing", func(t *testing.T) {
		if _, err := os.Stat("/var/run/chainguard/oidc/oidc-token"); err == nil {
			t.Skip("this machine has a real projected token")
		}
		saved := w.env["CHAINGUARD_IDENTITY_TOKEN"]
		defer func() { w.env["CHAINGUARD_IDENTITY_TOKEN"] = saved }()
		delete(w.env, "CHAINGUARD_IDENTITY_TOKEN")
		r := w.run(host, "get")
		assert.Equal(t, 1, r.code)
		assert.Contains(t, r.stdout, "no ambient OIDC token found")
		assert.Contains(t, r.stdout, "/var/run/chainguard/oidc/oidc-token")
		assert.Contains(t, r.stdout, "ACTIONS_ID_TOKEN_REQUEST_URL")
	})
	t.Run("file missing", func(t *testing.T) {
		w.env["CHAINGUARD_IDENTITY_TOKEN"] = filepath.Join(w.dir, "nope")
		r := w.run(host, "get")
		assert.Equal(t, 1, r.code)
		// A missing path may be a pasted secret: only the part of it that
		// exists is named.
		assert.NotContains(t, r.stdout, "nope")
		assert.Contains(t, r.stdout, strconv.Quote(w.dir))
		assert.Contains(t, r.stdout, "does not exist")
	})
	t.Run("expired", func(t *testing.T) {
		old := w.mint(sandbox.WithIssuedAt(time.Now().Add(-2*time.Hour)), sandbox.WithLifetime(time.Hour))
		w.env["CHAINGUARD_IDENTITY_TOKEN"] = old // a JWT itself, not a path
		w.ambient = old
		r := w.run(host, "get")
		assert.Equal(t, 1, r.code)
		assert.Contains(t, r.stdout, "expired at")
		assert.Contains(t, r.stdout, "ago")
	})
	t.Run("wrong audience", func(t *testing.T) {
		wrong := w.mint(sandbox.WithAudience("https://kubernetes.default.svc"))
		w.env["CHAINGUARD_IDENTITY_TOKEN"] = wrong
		w.ambient = wrong
		r := w.run(host, "get")
		assert.Equal(t, 1, r.code)
		assert.Contains(t, r.stdout, `"https://kubernetes.default.svc"`)
		assert.Contains(t, r.stdout, `"issuer.enforce.dev"`)
	})
	t.Run("not a JWT", func(t *testing.T) {
		f := filepath.Join(w.dir, "garbage")
		require.NoError(t, os.WriteFile(f, []byte("hello"), 0o600))
		w.env["CHAINGUARD_IDENTITY_TOKEN"] = f
		r := w.run(host, "get")
		assert.Equal(t, 1, r.code)
		assert.Contains(t, r.stdout, "not a JWT")
	})
	assert.Equal(t, 0, w.sb.STS.Requests(), "pre-flight failures never reach the STS")
}

func TestGitHubActionsAmbientToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	delete(w.env, "CHAINGUARD_IDENTITY_TOKEN")
	if _, err := os.Stat("/var/run/chainguard/oidc/oidc-token"); err == nil {
		t.Skip("this machine has a real projected token, which wins")
	}
	w.env["ACTIONS_ID_TOKEN_REQUEST_URL"] = w.sb.Issuer.ActionsRequestURL()
	w.env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = w.sb.Issuer.ActionsRequestToken()
	w.sb.STS.AddIdentity("gha-identity", sandbox.Identity{
		Issuer:         w.sb.Issuer.URL(),
		SubjectPattern: `repo:octo-org/octo-repo:ref:refs/heads/main`,
	})
	w.env["CHAINGUARD_IDENTITY"] = "gha-identity"
	r := w.run(w.sb.Registry.Host(), "get")
	require.Equal(t, 0, r.code, r.stdout)
	var c struct{ Secret string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &c))
	sub, err := w.sb.STS.VerifyToken(c.Secret, sandbox.RegistryAudience)
	require.NoError(t, err)
	assert.Equal(t, "gha-identity", sub)
}

func TestDebugLogsNeverCarryTokens(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.env["CHAINGUARD_DEBUG"] = "true"
	host := w.sb.Registry.Host()
	r := w.run(host, "get")
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stderr, "exchanging at", "debug output goes to stderr")
	var c struct{ Secret string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &c), "stdout stays pure protocol JSON")
	w.issued = append(w.issued, c.Secret)
	w.checkNoLeak(r)

	r = w.run(host, "get") // cache hit, logged
	assert.Contains(t, r.stderr, "cache hit")

	w.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: "no"})
	w.env["CHAINGUARD_NO_CACHE"] = "true"
	r = w.run(host, "get")
	assert.Equal(t, 1, r.code)
}

func TestBadConfigIsReportedButVersionWorks(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.env["CHAINGUARD_ISSUER"] = "http://sts.example.com"
	r := w.run(w.sb.Registry.Host(), "get")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "CHAINGUARD_ISSUER")
	assert.Contains(t, r.stdout, "loopback")
	r = w.run("", "version")
	assert.Equal(t, 0, r.code)
}

// Not parallel: it sets the package variable version.
func TestBuildVersion(t *testing.T) {
	saved := version
	defer func() { version = saved }()
	version = "v1.2.3"
	assert.Equal(t, "v1.2.3", buildVersion(), "the link-time version wins")
	version = ""
	// A checkout build (and this test binary) has no module version.
	assert.Equal(t, "(devel)", buildVersion())
}

func TestKubeletSubcommand(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	req := fmt.Sprintf(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"%s/chainguard/static:latest"}`, w.sb.Registry.Host())
	r := w.run(req, "kubelet")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, r.stderr)
	var resp struct {
		APIVersion, Kind, CacheKeyType, CacheDuration string
		Auth                                          map[string]struct{ Username, Password string }
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &resp), "stdout is the response only")
	assert.Equal(t, "CredentialProviderResponse", resp.Kind)
	a := resp.Auth[w.sb.Registry.Host()]
	assert.Equal(t, "_token", a.Username)
	w.issued = append(w.issued, a.Password)
	_, err := w.sb.STS.VerifyToken(a.Password, sandbox.RegistryAudience)
	require.NoError(t, err)

	// The docker helper and the kubelet plugin share one cache.
	assert.Equal(t, a.Password, w.get(w.sb.Registry.Host()))
	assert.Equal(t, 1, w.sb.STS.Exchanges())

	w.env["CHAINGUARD_NO_CACHE"] = "true"
	w.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: "identity mismatch for this node"})
	r = w.run(req, "kubelet")
	assert.Equal(t, 1, r.code)
	assert.Empty(t, r.stdout, "no JSON on failure")
	assert.Contains(t, r.stderr, "identity mismatch for this node")
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "a one-line reason")

	r = w.run("not json", "kubelet")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "not a CredentialProviderRequest")
}

func TestConfigureKubeletSubcommand(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.run("", "configure-kubelet", "--mode", "service-account")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "kind: CredentialProviderConfig")
	assert.Contains(t, r.stdout, "  - \""+w.sb.Registry.Host()+"\"\n", "matchImages are the served registries")
	assert.Contains(t, r.stdout, "cacheType: ServiceAccount", "the newest kubelet by default")
	assert.NotContains(t, r.stdout, "ClusterRole", "stdout stays one document")
	assert.Contains(t, r.stderr, "request-serviceaccounts-token-audience")

	r = w.run("", "configure-kubelet", "--mode", "service-account", "--kubelet-version", "1.33")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stdout, "cacheType:", "1.33 has no cacheType")
	assert.Contains(t, r.stdout, "KubeletServiceAccountTokenForCredentialProviders=true")

	r = w.run("", "configure-kubelet", "--rbac")
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "kind: ClusterRoleBinding")

	for _, args := range [][]string{{"--kubelet-version", "1.32"}, {"--kubelet-version", "one"}, {"--mode", "nodes"}} {
		r = w.run("", append([]string{"configure-kubelet"}, args...)...)
		assert.Equal(t, 2, r.code, "%v", args)
		assert.Empty(t, r.stdout, "%v: nothing on stdout", args)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "%v: one line: %q", args, r.stderr)
	}
}

// The invoking user's config file is theirs: configure-kubelet writes a
// config for every node from flags and environment only, even when that
// file sets everything (or is broken).
func TestConfigureKubeletIgnoresThePersonalConfigFile(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	dir := filepath.Join(w.env["HOME"], ".config", "docker-credential-cgr")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	personal := `{"identity":"personal-identity","registries":["personal.example.com"],"issuer":"https://personal-sts.example.com","cache_dir":"/home/me/cache"}`
	for _, content := range []string{personal, "{not json"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600))
		for _, k := range []string{"CHAINGUARD_IDENTITY", "CHAINGUARD_ISSUER", "CHAINGUARD_REGISTRY", "CHAINGUARD_CACHE_DIR", "CHAINGUARD_IDENTITY_TOKEN"} {
			delete(w.env, k)
		}
		r := w.run("", "configure-kubelet", "--identity", "flag-identity")
		require.Equal(t, 0, r.code, r.stderr)
		assert.NotContains(t, r.stdout, "personal")
		assert.NotContains(t, r.stdout, "/home/me")
		assert.Contains(t, r.stdout, "  - \"cgr.dev\"\n  - \"*.cgr.dev\"\n")
		assert.Contains(t, r.stdout, "#   CHAINGUARD_IDENTITY: from --identity\n")
		assert.Contains(t, r.stdout, "value: \"flag-identity\"")
	}
}
