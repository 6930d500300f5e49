//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/cgr-helper/docker-credential-cgr/test/internal/child"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

// clientTimeout bounds every client command.
const clientTimeout = 3 * time.Minute

// clientEnv is what one client runs with: a temporary DOCKER_CONFIG whose
// credHelpers maps the registry host to "cgr" (or has no credHelpers at
// all), PATH with the built helper on it, an isolated HOME and XDG folders
// so no auth file of the machine's is read, and the helper's settings: in
// the environment, or (viaConfigureDocker) saved by configure-docker.
type clientEnv struct {
	dir          string
	dockerConfig string
	policy       string // skopeo's signature policy: accept anything
	vars         map[string]string
}

type envConfig struct {
	helper          bool
	identity        string
	cacheDir        string
	configureDocker bool
}

type envOption func(*envConfig)

// withoutHelper leaves credHelpers out of the docker config and the helper
// off PATH: what a client does with no credentials at all.
func withoutHelper() envOption { return func(c *envConfig) { c.helper = false } }

// withIdentity makes the helper request identity id.
func withIdentity(id string) envOption { return func(c *envConfig) { c.identity = id } }

// withCacheDir shares a helper cache folder between environments.
func withCacheDir(dir string) envOption { return func(c *envConfig) { c.cacheDir = dir } }

// viaConfigureDocker sets the client up as the README tells a person to:
// the built binary's configure-docker writes the credHelpers entry into a
// docker config that already has other content, and saves the identity,
// token file, issuer and registry to the helper's config file; none of
// them is in the environment.
func viaConfigureDocker() envOption { return func(c *envConfig) { c.configureDocker = true } }

func (s *suite) newEnv(t *testing.T, opts ...envOption) *clientEnv {
	t.Helper()
	dir := t.TempDir()
	c := envConfig{helper: true, identity: sandbox.DefaultIdentity, cacheDir: filepath.Join(dir, "cache")}
	for _, o := range opts {
		o(&c)
	}
	e := &clientEnv{
		dir:          dir,
		dockerConfig: filepath.Join(dir, "docker"),
		policy:       filepath.Join(dir, "policy.json"),
	}
	for _, d := range []string{"home", "docker", "run", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	switch {
	case c.configureDocker:
		writeFile(t, filepath.Join(e.dockerConfig, "config.json"), existingDockerConfig)
	case c.helper:
		writeJSON(t, filepath.Join(e.dockerConfig, "config.json"), map[string]any{"credHelpers": map[string]string{s.host(): "cgr"}})
	default:
		writeJSON(t, filepath.Join(e.dockerConfig, "config.json"), map[string]any{})
	}
	writeJSON(t, e.policy, map[string]any{"default": []map[string]string{{"type": "insecureAcceptAnything"}}})
	if err := os.WriteFile(filepath.Join(dir, "registries.conf"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	path := os.Getenv("PATH")
	if c.helper {
		path = s.helperDir + string(os.PathListSeparator) + path
	}
	e.vars = map[string]string{
		"PATH":            path,
		"HOME":            filepath.Join(dir, "home"),
		"DOCKER_CONFIG":   e.dockerConfig,
		"XDG_RUNTIME_DIR": filepath.Join(dir, "run"),
		"XDG_CONFIG_HOME": filepath.Join(dir, "config"),
		// skopeo: no system registries.conf, so no mirrors or search lists.
		"CONTAINERS_REGISTRIES_CONF": filepath.Join(dir, "registries.conf"),

		"CHAINGUARD_ISSUER":         s.sts.URL(),
		"CHAINGUARD_REGISTRY":       s.host(),
		"CHAINGUARD_IDENTITY":       c.identity,
		"CHAINGUARD_IDENTITY_TOKEN": s.ambientFile,
		"CHAINGUARD_CACHE_DIR":      c.cacheDir,
	}
	if c.configureDocker {
		for _, k := range []string{"CHAINGUARD_ISSUER", "CHAINGUARD_REGISTRY", "CHAINGUARD_IDENTITY", "CHAINGUARD_IDENTITY_TOKEN"} {
			delete(e.vars, k)
		}
		s.configureDocker(t, e, c.identity)
	}
	return e
}

// existingDockerConfig is a docker config as a person has one before
// configure-docker: another registry's login and helper, and a key docker
// does not know, laid out by hand.
const existingDockerConfig = `{
	"auths": {"ghcr.io": {}},
	"credHelpers": {"gcr.io": "gcloud"},
	"x-unknown": {"nested": [1, 2.50, true]}
}
`

// configureDocker runs the built binary's configure-docker in e, as the
// first docker-credential-cgr on e's PATH, and checks what it wrote: our
// entry added to credHelpers and every other byte kept, the settings in
// the helper's config file, no warning; and that a second run changes
// nothing.
func (s *suite) configureDocker(t *testing.T, e *clientEnv, identity string) {
	t.Helper()
	bin := filepath.Join(s.helperDir, "docker-credential-cgr")
	args := []string{"configure-docker", "--registry", s.host(), "--identity", identity, "--identity-token", s.ambientFile, "--issuer", s.sts.URL()}
	dockerPath := filepath.Join(e.dockerConfig, "config.json")
	helperPath := filepath.Join(e.vars["XDG_CONFIG_HOME"], "docker-credential-cgr", "config.json")

	r := e.run(t, bin, args...)
	if r.err != nil {
		t.Fatalf("configure-docker: %v", r.err)
	}
	if r.stderr != "" {
		t.Errorf("configure-docker warned (output above); nothing here calls for a warning")
	}
	// The helper serves cgr.dev by default, so it gets an entry too.
	if want := "credHelpers now sends cgr.dev, " + s.host() + " to docker-credential-cgr"; !strings.Contains(r.stdout, want) {
		t.Errorf("configure-docker's report does not say %q", want)
	}

	doc := readFile(t, dockerPath, 0o600)
	var got struct {
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatalf("configure-docker left a docker config that is not JSON: %v\n%s", err, doc)
	}
	if want := map[string]string{"gcr.io": "gcloud", "cgr.dev": "cgr", s.host(): "cgr"}; !maps.Equal(got.CredHelpers, want) {
		t.Errorf("credHelpers is %v, want %v", got.CredHelpers, want)
	}
	for _, kept := range []string{`"auths": {"ghcr.io": {}},`, `"x-unknown": {"nested": [1, 2.50, true]}`, `"gcr.io": "gcloud"`} {
		if !strings.Contains(doc, kept) {
			t.Errorf("configure-docker did not keep %s as written:\n%s", kept, doc)
		}
	}

	var saved map[string]any
	if err := json.Unmarshal([]byte(readFile(t, helperPath, 0o600)), &saved); err != nil {
		t.Fatalf("the helper's config file is not JSON: %v", err)
	}
	tokenPath, err := filepath.Abs(s.ambientFile)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"identity":       identity,
		"identity_token": tokenPath,
		"issuer":         strings.TrimRight(s.sts.URL(), "/"),
		"registries":     []any{"cgr.dev", "*.cgr.dev", s.host()},
	}
	if !reflect.DeepEqual(saved, want) {
		t.Errorf("the helper's config file holds %v, want %v", saved, want)
	}

	helperDoc := readFile(t, helperPath, 0o600)
	r = e.run(t, bin, args...)
	if r.err != nil || r.stderr != "" {
		t.Fatalf("configure-docker, run again: %v (output above)", r.err)
	}
	if strings.Count(r.stdout, "nothing to change") != 2 {
		t.Errorf("a second configure-docker should change nothing in either file (output above)")
	}
	if readFile(t, dockerPath, 0o600) != doc || readFile(t, helperPath, 0o600) != helperDoc {
		t.Errorf("a second configure-docker rewrote a file")
	}
}

// readFile reads a file the test expects to have mode perm.
func readFile(t *testing.T, path string, perm os.FileMode) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

// result is what a client command did. Its output is the client's own
// (never the helper's stdout, which only the client reads), and it is
// checked never to hold a JWT.
type result struct {
	stdout, stderr string
	err            error
}

// output is stdout and stderr together, for checking what a person sees.
func (r result) output() string { return r.stdout + r.stderr }

// has reports whether the output contains every one of subs, ignoring case.
func (r result) has(subs ...string) bool {
	out := strings.ToLower(r.output())
	for _, s := range subs {
		if !strings.Contains(out, strings.ToLower(s)) {
			return false
		}
	}
	return true
}

// run runs program with e's environment and a deadline, logs the command
// and its output (redacted, shortened), and fails the test if the output
// holds anything token-like.
func (e *clientEnv) run(t *testing.T, program string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Dir = e.dir
	for _, k := range slices.Sorted(maps.Keys(e.vars)) {
		cmd.Env = append(cmd.Env, k+"="+e.vars[k])
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), err: err}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("%s did not finish within %s: %w", filepath.Base(program), clientTimeout, err)
	}
	status := "ok"
	if r.err != nil {
		status = r.err.Error()
	}
	t.Logf("$ %s %s\n  -> %s after %s\n%s", filepath.Base(program), strings.Join(args, " "), status,
		time.Since(start).Round(time.Millisecond), indent(shorten(child.Redact(r.output()))))
	if child.JWTLike.MatchString(r.output()) {
		t.Errorf("%s printed something token-like (shown redacted above)", filepath.Base(program))
	}
	return r
}

func shorten(s string) string {
	s = strings.TrimSpace(s)
	const limit = 3000
	if len(s) > limit {
		return "..." + s[len(s)-limit:]
	}
	return s
}

func indent(s string) string {
	if s == "" {
		return "  (no output)"
	}
	return "  | " + strings.ReplaceAll(s, "\n", "\n  | ")
}

// --- crane -----------------------------------------------------------------

// cranePull runs `crane pull` of tag into an OCI layout and checks the
// pulled manifest is the pushed one.
func cranePull(t *testing.T, s *suite, e *clientEnv, crane, tag string) (result, error) {
	t.Helper()
	out, err := os.MkdirTemp(e.dir, "crane-"+tag+"-")
	if err != nil {
		return result{}, err
	}
	r := e.run(t, crane, "pull", "--insecure", "--format=oci", s.ref(tag), out)
	if r.err != nil {
		return r, r.err
	}
	idx, err := layout.ImageIndexFromPath(out)
	if err != nil {
		return r, fmt.Errorf("reading crane's OCI layout: %w", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return r, err
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest.String() != s.digests[tag] {
		return r, fmt.Errorf("crane pulled %v, want the one manifest %s", m.Manifests, s.digests[tag])
	}
	return r, nil
}

// --- skopeo ----------------------------------------------------------------

// skopeoInspect runs `skopeo inspect` and checks the digest it reports.
func skopeoInspect(t *testing.T, s *suite, e *clientEnv, skopeo, tag string) (result, error) {
	t.Helper()
	r := e.run(t, skopeo, "--policy", e.policy, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+s.ref(tag))
	if r.err != nil {
		return r, r.err
	}
	if got := strings.TrimSpace(r.stdout); got != s.digests[tag] {
		return r, fmt.Errorf("skopeo inspect reported digest %q, want %s", got, s.digests[tag])
	}
	return r, nil
}

// skopeoCopy runs `skopeo copy` into a local dir: and checks the copied
// manifest is byte for byte the pushed one.
func skopeoCopy(t *testing.T, s *suite, e *clientEnv, skopeo, tag string) (result, error) {
	t.Helper()
	out := filepath.Join(e.dir, "skopeo-"+tag)
	r := e.run(t, skopeo, "--policy", e.policy, "copy", "--src-tls-verify=false", "docker://"+s.ref(tag), "dir:"+out)
	if r.err != nil {
		return r, r.err
	}
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		return r, fmt.Errorf("reading skopeo's copy: %w", err)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != s.digests[tag] {
		return r, fmt.Errorf("skopeo copied manifest %s, want %s", got, s.digests[tag])
	}
	return r, nil
}

// --- docker ----------------------------------------------------------------

var (
	daemonOnce sync.Once
	daemon     *dockerd
	daemonErr  error
)

// docker is the docker CLI and the suite's own daemon.
type docker struct {
	cli string
	d   *dockerd
}

// dockerWorld returns the suite and a running dockerd, starting the daemon
// on first use. It skips (in CI: fails) when docker.io is not installed or
// the suite is not root, which dockerd needs.
func dockerWorld(t *testing.T) (*suite, *docker) {
	t.Helper()
	s := world(t)
	dockerdBin := need(t, "dockerd", "the Debian package docker.io")
	cli := dockerCLI(t)
	if os.Geteuid() != 0 {
		msg := "dockerd needs root: run the docker tests as root"
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	daemonOnce.Do(func() {
		daemon, daemonErr = startDockerd(dockerdBin, s.host())
		if daemonErr == nil {
			atExit(daemon.stop)
			t.Logf("dockerd %s (%s), client %s", daemon.host(), versionOf(dockerdBin, "--version"), versionOf(cli, "--version"))
		}
	})
	if daemonErr != nil {
		t.Fatalf("starting dockerd: %v", daemonErr)
	}
	return s, &docker{cli: cli, d: daemon}
}

// dockerCLI is $CGR_E2E_DOCKER_CLI if set, else the docker.io package's
// client, /usr/bin/docker, which matches its dockerd, rather than another
// docker earlier on PATH (machines of this kind ship a newer client-only
// docker in /usr/local/bin).
func dockerCLI(t *testing.T) string {
	t.Helper()
	if cli := os.Getenv("CGR_E2E_DOCKER_CLI"); cli != "" {
		return cli
	}
	const packaged = "/usr/bin/docker"
	if fi, err := os.Stat(packaged); err == nil && fi.Mode().IsRegular() {
		return packaged
	}
	return need(t, "docker", "the Debian package docker.io")
}

// newEnv is s.newEnv with DOCKER_HOST pointing at the suite's daemon.
func (dk *docker) newEnv(t *testing.T, s *suite, opts ...envOption) *clientEnv {
	t.Helper()
	e := s.newEnv(t, opts...)
	e.vars["DOCKER_HOST"] = dk.d.host()
	return e
}

// pull runs `docker pull` of tag through the daemon and checks the daemon
// now holds the pushed manifest digest for it.
func (dk *docker) pull(t *testing.T, s *suite, e *clientEnv, tag string) (result, error) {
	t.Helper()
	r := e.run(t, dk.cli, "pull", s.ref(tag))
	if r.err != nil {
		return r, r.err
	}
	insp := e.run(t, dk.cli, "image", "inspect", "--format", "{{json .RepoDigests}}", s.ref(tag))
	if insp.err != nil {
		return r, fmt.Errorf("docker image inspect: %w", insp.err)
	}
	var digests []string
	if err := json.Unmarshal([]byte(strings.TrimSpace(insp.stdout)), &digests); err != nil {
		return r, fmt.Errorf("docker image inspect: %w", err)
	}
	want := s.host() + "/" + repo + "@" + s.digests[tag]
	if !slices.Contains(digests, want) {
		return r, fmt.Errorf("docker holds %v for %s, want %s", digests, tag, want)
	}
	return r, nil
}
