//go:build e2ekubelet

package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"github.com/cgr-helper/docker-credential-cgr/test/internal/child"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/test/internal/distribution"
)

// repo is the repository the test images live in: a cgr.dev-like name.
const repo = "chainguard/static"

// startRegistry starts Debian's docker-registry on a free loopback port,
// serving storage, with token auth when auth is set. As in test/e2e.
func startRegistry(t *testing.T, bin, dir, storage string, auth *distribution.TokenAuth) (*proc, string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, addr, err := tryStartRegistry(bin, dir, storage, auth)
		if err == nil {
			return p, addr
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil, ""
}

func tryStartRegistry(bin, dir, storage string, auth *distribution.TokenAuth) (*proc, string, error) {
	port, err := child.FreePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(distribution.Config(storage, addr, auth)), 0o600); err != nil {
		return nil, "", err
	}
	// HOME only: REGISTRY_* variables would override the file.
	p, err := startProc("docker-registry", filepath.Join(dir, "registry.log"), []string{"HOME=" + dir}, bin, "serve", cfgFile)
	if err != nil {
		return nil, "", err
	}
	want := distribution.ReadyStatus(auth)
	client := &http.Client{Timeout: 2 * time.Second}
	err = waitFor("docker-registry on "+addr, p, 30*time.Second, func() bool {
		resp, err := client.Get("http://" + addr + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == want
	})
	if err != nil {
		p.stop(5 * time.Second)
		return nil, "", err
	}
	return p, addr, nil
}

// frontDoor is one loopback host:port where /token is the sandbox's
// cgr.dev-like realm and everything else goes to the registry, as cgr.dev
// serves its realm at https://cgr.dev/token.
type frontDoor struct {
	srv     *httptest.Server
	realm   *sandbox.TokenRealm
	backend atomic.Pointer[url.URL]
}

func newFrontDoor(sts *sandbox.STS) (*frontDoor, error) {
	realm, err := sandbox.NewTokenRealm(sts, sandbox.RegistryAudience)
	if err != nil {
		return nil, err
	}
	f := &frontDoor{realm: realm}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(f.backend.Load())
			r.Out.Host = r.In.Host
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	mux := http.NewServeMux()
	mux.Handle("/token", realm)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if f.backend.Load() == nil {
			http.Error(w, "the registry is not running yet", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	f.srv = httptest.NewServer(mux)
	return f, nil
}

func (f *frontDoor) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// buildPause compiles a tiny static program that waits for SIGTERM: the
// pod sandbox's pause process, and the test images' entrypoint too, so the
// pods that pull run and stay up. The real pause image cannot be pulled
// here (its registry is unreachable).
func buildPause(t *testing.T, dir string) []byte {
	t.Helper()
	src := filepath.Join(dir, "pause-src")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod": "module pause\n\ngo 1.22\n",
		"main.go": `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
`,
	}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(src, n), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-mod=mod", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the pause program: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// image is a runnable image: /pause as entrypoint, plus /tag holding tag,
// so every tag has its own digest.
func image(t *testing.T, pause []byte, tag string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{{"pause", 0o755, pause}, {"tag", 0o644, []byte(tag + "\n")}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{"/pause"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// push writes one image per tag to an unauthenticated registry at addr.
func push(t *testing.T, addr string, pause []byte, tags []string) {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tag := range tags {
		ref, err := name.ParseReference(addr+"/"+repo+":"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, image(t, pause, tag), remote.WithTransport(tr), remote.WithContext(ctx)); err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
	}
}

// writePauseArchive writes the pause image as a docker-save archive under
// ref, for ctr images import.
func writePauseArchive(t *testing.T, path, ref string, pause []byte) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, image(t, pause, "pause")); err != nil {
		t.Fatal(err)
	}
}
