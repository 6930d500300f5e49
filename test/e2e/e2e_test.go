//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

// craneVersion is the crane test/e2e/install.sh installs: the
// go-containerregistry version go.mod pins.
const craneVersion = "v0.22.1"

func craneBin(t *testing.T) string {
	t.Helper()
	return need(t, "crane", "crane with: go install github.com/google/go-containerregistry/cmd/crane@"+craneVersion)
}

func skopeoBin(t *testing.T) string {
	t.Helper()
	return need(t, "skopeo", "the Debian package skopeo")
}

// counter is how much one of the STS's counters grew since it was made.
type counter struct {
	read   func() int
	before int
}

func count(read func() int) *counter { return &counter{read, read()} }
func (c *counter) n() int            { return c.read() - c.before }

// ourMessage is how the helper's error for a refused identity begins; the
// STS's own reason follows it.
const ourMessage = "the STS rejected the exchange"

// TestVersions checks that every component the suite drives reports a
// version, and holds the ones the README and these tests rely on:
//   - crane is the go-containerregistry version go.mod pins, and
//     craneVersion, test/e2e/install.sh and the README say the same;
//   - skopeo is 1.9 or later, where the credHelpers lookup order the
//     README gives (and TestSkopeo exercises) was read;
//   - the docker CLI is one the README describes (20.10 to 28.x: it
//     discards a helper's error);
//   - the helper answers `version` in the credential-helper protocol's form.
//
// A missing component skips its subtest, or fails it in CI, like the tests
// that need it.
func TestVersions(t *testing.T) {
	t.Run("docker-registry", func(t *testing.T) {
		bin := need(t, "docker-registry", "the Debian package docker-registry")
		semver(t, "docker-registry", versionLine(t, bin, "--version"))
	})
	t.Run("crane", func(t *testing.T) {
		gomod := readRepoFile(t, "go.mod")
		m := regexp.MustCompile(`(?m)^\s*github\.com/google/go-containerregistry (v\S+)`).FindStringSubmatch(gomod)
		if m == nil {
			t.Fatal("go.mod does not require github.com/google/go-containerregistry")
		}
		pinned := m[1]
		if craneVersion != pinned {
			t.Errorf("craneVersion is %s, go.mod pins go-containerregistry %s", craneVersion, pinned)
		}
		install := readRepoFile(t, "test/e2e/install.sh")
		if !strings.Contains(install, `CRANE_VERSION="${CRANE_VERSION:-`+pinned+`}"`) {
			t.Errorf("test/e2e/install.sh does not install crane %s by default", pinned)
		}
		if !strings.Contains(readRepoFile(t, "README.md"), "crane "+pinned) {
			t.Errorf("README.md does not name crane %s", pinned)
		}
		got := versionLine(t, craneBin(t), "version")
		if got != pinned {
			t.Errorf("crane version is %q, want %s, the go-containerregistry go.mod pins (run test/e2e/install.sh)", got, pinned)
		}
	})
	t.Run("skopeo", func(t *testing.T) {
		v := semver(t, "skopeo", versionLine(t, skopeoBin(t), "--version"))
		if !v.atLeast(1, 9) {
			t.Errorf("skopeo %s is older than 1.9, the version whose credHelpers lookup order the README gives", v)
		}
	})
	t.Run("dockerd", func(t *testing.T) {
		bin := need(t, "dockerd", "the Debian package docker.io")
		semver(t, "dockerd", versionLine(t, bin, "--version"))
	})
	t.Run("docker CLI", func(t *testing.T) {
		v := semver(t, "docker", versionLine(t, dockerCLI(t), "--version"))
		if !v.atLeast(20, 10) || v.major > 28 {
			t.Errorf("docker CLI %s: the README describes 20.10 to 28.x (a helper's error is discarded); check this one and update the README", v)
		}
	})
	t.Run("helper", func(t *testing.T) {
		const prefix = "docker-credential-cgr (github.com/cgr-helper/docker-credential-cgr) "
		got := versionLine(t, helperBinary, "version")
		if v, ok := strings.CutPrefix(got, prefix); !ok || strings.TrimSpace(v) == "" {
			t.Errorf("the helper's version line is %q, want %q followed by a version", got, prefix)
		}
	})
}

// version is the major.minor.patch a program reported.
type version struct{ major, minor, patch int }

func (v version) String() string { return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch) }

func (v version) atLeast(major, minor int) bool {
	return v.major > major || (v.major == major && v.minor >= minor)
}

// semver finds the first x.y[.z] in line, and fails the test without one.
func semver(t *testing.T, program, line string) version {
	t.Helper()
	m := regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("%s reported no version number: %q", program, line)
	}
	var v version
	v.major, _ = strconv.Atoi(m[1])
	v.minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		v.patch, _ = strconv.Atoi(m[3])
	}
	t.Logf("%-16s %s", program, line)
	return v
}

// versionLine is the first line program prints for args, failing the test
// if it does not run or prints nothing.
func versionLine(t *testing.T, program string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, program, args...).CombinedOutput()
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil {
		t.Fatalf("%s %s: %v: %s", program, strings.Join(args, " "), err, first)
	}
	if first == "" {
		t.Fatalf("%s %s printed nothing", program, strings.Join(args, " "))
	}
	return first
}

// readRepoFile reads a file by its path from the repository root.
func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCranePull: crane finds the helper through the credHelpers entry
// configure-docker wrote, pulls with the settings it saved, and the second
// pull is answered from the helper's cache.
func TestCranePull(t *testing.T) {
	crane := craneBin(t)
	s := world(t)
	e := s.newEnv(t, viaConfigureDocker())
	x := count(s.sts.Exchanges)
	if _, err := cranePull(t, s, e, crane, "crane"); err != nil {
		t.Fatalf("crane pull through the helper: %v", err)
	}
	if x.n() != 1 {
		t.Fatalf("the first pull made %d exchanges, want 1", x.n())
	}
	if _, err := cranePull(t, s, e, crane, "crane"); err != nil {
		t.Fatalf("second crane pull: %v", err)
	}
	if x.n() != 1 {
		t.Errorf("the second pull made %d more exchanges, want 0: a fresh cached token must be reused", x.n()-1)
	}
}

// TestSkopeo: skopeo inspect and skopeo copy into a local dir: folder.
// skopeo 1.9 (containers/image 5.23) reads credHelpers from every auth file
// it consults: --authfile / REGISTRY_AUTH_FILE (else
// $XDG_RUNTIME_DIR/containers/auth.json), then
// $XDG_CONFIG_HOME/containers/auth.json, then $DOCKER_CONFIG/config.json
// (else ~/.docker/config.json), then ~/.dockercfg.
func TestSkopeo(t *testing.T) {
	skopeo := skopeoBin(t)
	s := world(t)

	t.Run("DOCKER_CONFIG", func(t *testing.T) {
		e := s.newEnv(t)
		x := count(s.sts.Exchanges)
		if _, err := skopeoInspect(t, s, e, skopeo, "skopeo"); err != nil {
			t.Fatalf("skopeo inspect through the helper: %v", err)
		}
		if _, err := skopeoCopy(t, s, e, skopeo, "skopeo"); err != nil {
			t.Fatalf("skopeo copy through the helper: %v", err)
		}
		if x.n() != 1 {
			t.Errorf("inspect and copy made %d exchanges, want 1 (the copy answered from the cache)", x.n())
		}
	})

	t.Run("REGISTRY_AUTH_FILE", func(t *testing.T) {
		e := s.newEnv(t)
		// The docker config has no credHelpers; the containers auth file does.
		writeJSON(t, filepath.Join(e.dockerConfig, "config.json"), map[string]any{})
		authFile := filepath.Join(e.dir, "auth.json")
		writeJSON(t, authFile, map[string]any{"credHelpers": map[string]string{s.host(): "cgr"}})
		e.vars["REGISTRY_AUTH_FILE"] = authFile
		if _, err := skopeoInspect(t, s, e, skopeo, "skopeo"); err != nil {
			t.Fatalf("skopeo inspect through the helper, from REGISTRY_AUTH_FILE: %v", err)
		}
	})
}

// TestDockerPull: docker pull through the suite's own dockerd, set up by
// configure-docker. The docker CLI runs the helper and hands the
// credentials to the daemon, which does the token dance with the registry.
func TestDockerPull(t *testing.T) {
	s, dk := dockerWorld(t)
	e := dk.newEnv(t, s, viaConfigureDocker())
	x := count(s.sts.Exchanges)
	if _, err := dk.pull(t, s, e, "docker"); err != nil {
		t.Fatalf("docker pull through the helper: %v", err)
	}
	if x.n() != 1 {
		t.Errorf("the pull made %d exchanges, want 1", x.n())
	}
}

// TestWithoutHelperDenied: the control. Without credHelpers (and without the
// helper on PATH), every client is refused, so the registry really demands
// the helper's token.
func TestWithoutHelperDenied(t *testing.T) {
	denied := func(t *testing.T, r result, err error, req *counter) {
		t.Helper()
		if err == nil {
			t.Fatal("the pull succeeded without the helper; the registry is not protected")
		}
		if !r.has("authentication required") {
			t.Error("the client failed, but not because the registry refused it (output above)")
		}
		if req.n() != 0 {
			t.Errorf("the STS saw %d requests; without the helper it must see none", req.n())
		}
	}
	t.Run("crane", func(t *testing.T) {
		crane := craneBin(t)
		s := world(t)
		req := count(s.sts.Requests)
		r, err := cranePull(t, s, s.newEnv(t, withoutHelper()), crane, "denied-crane")
		denied(t, r, err, req)
	})
	t.Run("skopeo", func(t *testing.T) {
		skopeo := skopeoBin(t)
		s := world(t)
		req := count(s.sts.Requests)
		r, err := skopeoInspect(t, s, s.newEnv(t, withoutHelper()), skopeo, "denied-skopeo")
		denied(t, r, err, req)
	})
	t.Run("docker", func(t *testing.T) {
		s, dk := dockerWorld(t)
		req := count(s.sts.Requests)
		r, err := dk.pull(t, s, dk.newEnv(t, s, withoutHelper()), "denied-docker")
		denied(t, r, err, req)
	})
}

// TestRejectedIdentity: the STS refuses the identity, so every client
// fails; crane and skopeo show the helper's own message. The docker CLI
// discards a helper's error and pulls anonymously, so with docker the
// registry's refusal is what a person sees.
func TestRejectedIdentity(t *testing.T) {
	// rejected checks the helper ran and asked the STS, which said no.
	rejected := func(t *testing.T, err error, req, x *counter) {
		t.Helper()
		if err == nil {
			t.Fatal("the pull succeeded with an identity the STS refuses")
		}
		if req.n() < 1 {
			t.Error("the STS saw no request: the helper did not run")
		}
		if x.n() != 0 {
			t.Errorf("the STS issued %d tokens for a refused identity", x.n())
		}
	}
	t.Run("crane", func(t *testing.T) {
		crane := craneBin(t)
		s := world(t)
		req, x := count(s.sts.Requests), count(s.sts.Exchanges)
		r, err := cranePull(t, s, s.newEnv(t, withIdentity(rejectedIdentity)), crane, "rejected-crane")
		rejected(t, err, req, x)
		if !r.has(ourMessage, "may not assume identity") {
			t.Error("crane's output does not show the helper's message with the STS's reason")
		}
	})
	t.Run("skopeo", func(t *testing.T) {
		skopeo := skopeoBin(t)
		s := world(t)
		req, x := count(s.sts.Requests), count(s.sts.Exchanges)
		r, err := skopeoInspect(t, s, s.newEnv(t, withIdentity(rejectedIdentity)), skopeo, "rejected-skopeo")
		rejected(t, err, req, x)
		if !r.has(ourMessage, "may not assume identity") {
			t.Error("skopeo's output does not show the helper's message with the STS's reason")
		}
	})
	t.Run("docker", func(t *testing.T) {
		s, dk := dockerWorld(t)
		req, x := count(s.sts.Requests), count(s.sts.Exchanges)
		r, err := dk.pull(t, s, dk.newEnv(t, s, withIdentity(rejectedIdentity)), "rejected-docker")
		rejected(t, err, req, x)
		if r.has(ourMessage) {
			t.Log("this docker CLI shows the helper's message")
		} else if !r.has("authentication required") {
			t.Error("docker failed, but neither with the helper's message nor with the registry's refusal")
		}
	})
}

// TestConcurrentColdCache: three docker pulls of different tags and three
// crane pulls start at once on one cold cache; the helpers coalesce on the
// cache lock and the STS sees exactly one exchange. The STS holds that one
// exchange for two seconds, so every other helper is surely waiting on the
// lock while it is outstanding.
func TestConcurrentColdCache(t *testing.T) {
	crane := craneBin(t)
	s, dk := dockerWorld(t)
	cache := t.TempDir()
	s.sts.InjectFaults(sandbox.Fault{Delay: 2 * time.Second})
	req, x, realm := count(s.sts.Requests), count(s.sts.Exchanges), count(s.realm.Requests)

	type pull struct {
		name string
		run  func() error
	}
	var pulls []pull
	for i, tag := range []string{"conc-docker-1", "conc-docker-2", "conc-docker-3"} {
		e := dk.newEnv(t, s, withCacheDir(cache))
		pulls = append(pulls, pull{"docker pull " + tag, func() error { _, err := dk.pull(t, s, e, tag); return err }})
		ctag := []string{"conc-crane-1", "conc-crane-2", "conc-crane-3"}[i]
		ce := s.newEnv(t, withCacheDir(cache))
		pulls = append(pulls, pull{"crane pull " + ctag, func() error { _, err := cranePull(t, s, ce, crane, ctag); return err }})
	}
	start := make(chan struct{})
	errs := make([]error, len(pulls))
	var wg sync.WaitGroup
	for i, p := range pulls {
		wg.Go(func() {
			<-start
			errs[i] = p.run()
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", pulls[i].name, err)
		}
	}
	t.Logf("6 concurrent pulls: %d STS exchange(s), %d STS request(s), %d realm token request(s)", x.n(), req.n(), realm.n())
	if x.n() != 1 || req.n() != 1 {
		t.Errorf("the STS saw %d requests and made %d exchanges, want exactly 1 of each", req.n(), x.n())
	}
	if realm.n() < len(pulls) {
		t.Errorf("the realm saw %d token requests, want at least %d (one per pull)", realm.n(), len(pulls))
	}
}

// TestExpiry: the STS issues tokens that expire inside the helper's
// 5-minute margin, so the helper never reuses one: the second pull
// exchanges again and still succeeds. (TestCranePull shows the contrast: a
// token with an hour left is reused.)
func TestExpiry(t *testing.T) {
	s := world(t)
	s.sts.SetTokenLifetime(4 * time.Minute)
	t.Cleanup(func() { s.sts.SetTokenLifetime(time.Hour) })

	twice := func(t *testing.T, pull func() error) {
		t.Helper()
		x := count(s.sts.Exchanges)
		for i := 1; i <= 2; i++ {
			if err := pull(); err != nil {
				t.Fatalf("pull %d: %v", i, err)
			}
			if x.n() != i {
				t.Fatalf("after pull %d the STS made %d exchanges, want %d", i, x.n(), i)
			}
		}
	}
	t.Run("crane", func(t *testing.T) {
		crane := craneBin(t)
		e := s.newEnv(t)
		twice(t, func() error { _, err := cranePull(t, s, e, crane, "expiry-crane"); return err })
	})
	t.Run("docker", func(t *testing.T) {
		_, dk := dockerWorld(t)
		e := dk.newEnv(t, s)
		twice(t, func() error { _, err := dk.pull(t, s, e, "expiry-docker"); return err })
	})
}
