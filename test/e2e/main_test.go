//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/test/internal/distribution"
)

// repo is the repository every test image is pushed to: a cgr.dev-like
// "org/image" name.
const repo = "chainguard/static"

// tags are the test images, one small random image each, pushed at suite
// start. Every test pulls its own tags, so a test never depends on what an
// earlier one left in a client's local store.
var tags = []string{
	"crane", "skopeo", "docker",
	"denied-crane", "denied-skopeo", "denied-docker",
	"rejected-crane", "rejected-skopeo", "rejected-docker",
	"conc-docker-1", "conc-docker-2", "conc-docker-3",
	"conc-crane-1", "conc-crane-2", "conc-crane-3",
	"expiry-crane", "expiry-docker",
}

// rejectedIdentity is an assumable identity the ambient token does not
// match, so the STS refuses every exchange for it with 403.
const rejectedIdentity = "720909c9f5279097d847ad02a2f24ba8f59de36a/0000000000000bad"

// suite is the world every test shares: the helper binary, the sandbox's
// issuer and STS, the realm, and a token-auth distribution registry holding
// the test images, behind a front door that serves both.
type suite struct {
	helperDir   string // holds docker-credential-cgr; goes on PATH
	issuer      *sandbox.Issuer
	sts         *sandbox.STS
	realm       *sandbox.TokenRealm
	registry    *registryProc
	front       *httptest.Server
	ambientFile string            // the projected service-account token file
	digests     map[string]string // tag -> pushed manifest digest
}

// host is the registry's host:port as clients see it (the front door), what
// image references and credHelpers use.
func (s *suite) host() string { return strings.TrimPrefix(s.front.URL, "http://") }

// ref is the image reference of tag.
func (s *suite) ref(tag string) string { return s.host() + "/" + repo + ":" + tag }

var (
	// helperBinary is the built docker-credential-cgr, set by TestMain.
	helperBinary string

	setupOnce sync.Once
	shared    *suite
	setupErr  error

	// cleanups run, last first, when every test is done, whether they
	// passed or not. Only TestMain and the once-guarded setups append.
	cleanupMu sync.Mutex
	cleanups  []func()
)

func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

func TestMain(m *testing.M) {
	code := run(m)
	cleanupMu.Lock()
	for _, f := range slices.Backward(cleanups) {
		f()
	}
	cleanupMu.Unlock()
	os.Exit(code)
}

func run(m *testing.M) int {
	// make e2e passes the binary it just built; a bare `go test -tags e2e`
	// builds one.
	if b := os.Getenv("CGR_E2E_HELPER"); b != "" {
		abs, err := filepath.Abs(b)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "CGR_E2E_HELPER:", err)
			return 1
		}
		helperBinary = abs
	} else {
		dir, err := os.MkdirTemp("", "cgr-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		atExit(func() { removeAll(dir) })
		helperBinary = filepath.Join(dir, "docker-credential-cgr")
		build := exec.Command("go", "build", "-o", helperBinary, "./cmd/docker-credential-cgr")
		build.Dir = filepath.Join("..", "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building docker-credential-cgr:", err)
			return 1
		}
	}
	return m.Run()
}

// world returns the shared suite, starting it on first use. It skips (or,
// in CI, fails) the test when the registry is not installed.
func world(t *testing.T) *suite {
	t.Helper()
	registryBin := need(t, "docker-registry", "the Debian package docker-registry")
	setupOnce.Do(func() {
		start := time.Now()
		shared, setupErr = newSuite(registryBin)
		if setupErr == nil {
			t.Logf("suite ready in %s: registry and realm at %s (front door for %s, %s), STS %s",
				time.Since(start).Round(time.Millisecond), shared.host(), shared.registry.addr,
				versionOf(registryBin, "--version"), shared.sts.URL())
		}
	})
	if setupErr != nil {
		t.Fatalf("starting the suite: %v", setupErr)
	}
	return shared
}

func newSuite(registryBin string) (*suite, error) {
	s := &suite{digests: map[string]string{}}
	var err error
	if s.helperDir, err = helperOnPath(); err != nil {
		return nil, err
	}
	if err := s.startIdentities(); err != nil {
		return nil, err
	}
	backend, err := s.startFrontDoor()
	if err != nil {
		return nil, err
	}

	work, err := os.MkdirTemp("", "cgr-e2e-")
	if err != nil {
		return nil, err
	}
	atExit(func() { removeAll(work) })
	if err := s.writeAmbientToken(work); err != nil {
		return nil, err
	}
	storage, err := s.seedStorage(registryBin, work)
	if err != nil {
		return nil, err
	}
	if err := s.startTokenRegistry(registryBin, work, storage); err != nil {
		return nil, err
	}
	backend.Store(&url.URL{Scheme: "http", Host: s.registry.addr})
	return s, nil
}

// helperOnPath is a folder that holds the helper as docker-credential-cgr:
// clients find the helper by that name on PATH.
func helperOnPath() (string, error) {
	if filepath.Base(helperBinary) == "docker-credential-cgr" {
		return filepath.Dir(helperBinary), nil
	}
	dir, err := os.MkdirTemp("", "cgr-e2e-path-")
	if err != nil {
		return "", err
	}
	atExit(func() { removeAll(dir) })
	if err := os.Symlink(helperBinary, filepath.Join(dir, "docker-credential-cgr")); err != nil {
		return "", err
	}
	return dir, nil
}

// startIdentities starts the cluster issuer and the STS, which trusts it
// for the default identity and for rejectedIdentity.
func (s *suite) startIdentities() error {
	var err error
	if s.issuer, err = sandbox.NewIssuer(); err != nil {
		return err
	}
	atExit(s.issuer.Close)
	if s.sts, err = sandbox.NewSTS(); err != nil {
		return err
	}
	atExit(s.sts.Close)
	s.sts.AddIdentity(sandbox.DefaultIdentity, sandbox.Identity{Issuer: s.issuer.URL(), SubjectPattern: sandbox.DefaultSubjectPattern})
	s.sts.AddIdentity(rejectedIdentity, sandbox.Identity{Issuer: s.issuer.URL(), SubjectPattern: "system:serviceaccount:elsewhere:nobody"})
	return nil
}

// startFrontDoor starts the realm and the front door: one loopback
// host:port where /token is the sandbox's cgr.dev-like realm and everything
// else goes to the distribution registry, as cgr.dev serves its realm at
// https://cgr.dev/token. It must be one host:port: go-containerregistry
// (crane) refuses a realm on a loopback or private IP unless it is the
// registry's own host:port. Until the returned backend is stored, the
// registry side answers 503.
func (s *suite) startFrontDoor() (backend *atomic.Pointer[url.URL], err error) {
	if s.realm, err = sandbox.NewTokenRealm(s.sts, sandbox.RegistryAudience); err != nil {
		return nil, err
	}
	backend = new(atomic.Pointer[url.URL])
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(backend.Load())
			r.Out.Host = r.In.Host // the registry sees the host clients use
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	mux := http.NewServeMux()
	mux.Handle("/token", s.realm)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if backend.Load() == nil {
			http.Error(w, "the registry is not running yet", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	s.front = httptest.NewServer(mux)
	atExit(s.front.Close)
	return backend, nil
}

// writeAmbientToken writes the projected service-account token into work.
func (s *suite) writeAmbientToken(work string) error {
	ambient, err := s.issuer.MintServiceAccountToken("e2e", "puller", sandbox.WithLifetime(3*time.Hour))
	if err != nil {
		return err
	}
	s.ambientFile = filepath.Join(work, "oidc-token")
	return os.WriteFile(s.ambientFile, []byte(ambient), 0o600)
}

// seedStorage pushes the test images into a new storage folder through a
// short-lived registry without auth on that folder: the realm, like
// cgr.dev's, never grants push. It returns the folder.
func (s *suite) seedStorage(registryBin, work string) (string, error) {
	storage := filepath.Join(work, "storage")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return "", err
	}
	seeder, err := startRegistry(registryBin, filepath.Join(work, "seed"), storage, nil)
	if err != nil {
		return "", fmt.Errorf("seeding registry: %w", err)
	}
	pushErr := s.push(seeder.addr)
	seeder.stop()
	return storage, pushErr
}

// startTokenRegistry starts the registry the tests pull from, on the seeded
// storage, trusting tokens the realm signs.
func (s *suite) startTokenRegistry(registryBin, work, storage string) error {
	certFile := filepath.Join(work, "realm.crt")
	if err := os.WriteFile(certFile, s.realm.CertificatePEM(), 0o600); err != nil {
		return err
	}
	var err error
	s.registry, err = startRegistry(registryBin, filepath.Join(work, "registry"), storage, &distribution.TokenAuth{
		Realm:          s.front.URL + "/token",
		Service:        s.realm.Service(),
		Issuer:         s.realm.Issuer(),
		RootCertBundle: certFile,
	})
	if err != nil {
		return err
	}
	atExit(s.registry.stop)
	return nil
}

// push writes one small random image per tag.
func (s *suite) push(addr string) error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tag := range tags {
		img, err := random.Image(1024, 2)
		if err != nil {
			return err
		}
		ref, err := name.ParseReference(addr+"/"+repo+":"+tag, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img, remote.WithTransport(tr), remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		s.digests[tag] = d.String()
	}
	return nil
}

// inCI reports whether the suite runs in CI, where a missing component is
// a failure rather than a reason to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// need finds program on PATH (or in GOPATH/bin, where go install puts
// crane). When it is missing, the test is skipped with what to install, or
// fails in CI.
func need(t *testing.T, program, install string) string {
	t.Helper()
	if p, err := lookPath(program); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s is not installed: install %s (test/e2e/install.sh installs every component)", program, install)
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func lookPath(program string) (string, error) {
	if p, err := exec.LookPath(program); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", err
	}
	for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
		p := filepath.Join(dir, "bin", program)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New(program + " not found")
}

// versionOf is the first line a program prints for its version flag.
func versionOf(program string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, program, args...).CombinedOutput()
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	return first
}

// removeAll removes a folder the suite made, and says so on stderr if it
// cannot: a leftover temporary folder is not a test failure.
func removeAll(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cleaning up:", err)
	}
}
