// Command procbench measures docker-credential-cgr as docker runs it: one
// whole process per credential request. It reports the cached `get` against
// a minimal Go binary that reads one small file (run alternately, median of
// the per-pair ratios), the stripped binary's size, and the exchange count
// and wall time of 32 parallel cold gets, and a cached kubelet-mode call
// against a cached get. `make bench` runs it; the numbers
// go in docs/benchmarks.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

// baseline is the least a credential helper can do: read a small file and
// print it. The variants link more without running it: net/http alone;
// and an HTTPS client call plus a golang-jwt parse, the floor for any
// helper that can exchange a token and read its expiry.
func baseline(imports, unreached string) string {
	return `package main

import (
	"os"
` + imports + `
)

func main() {
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		os.Exit(1)
	}
	if len(os.Args) > 2 { // never at run time; only so the linker keeps the code
` + unreached + `
	}
	os.Stdout.Write(b)
}
`
}

var (
	baselineSrc = baseline("", "")
	netHTTPSrc  = baseline(`	_ "net/http"`, "")
	httpsJWTSrc = baseline(`	"net/http"
	"github.com/golang-jwt/jwt/v5"`, `		http.Post(os.Args[2], "", nil)
		var c jwt.RegisteredClaims
		jwt.NewParser().ParseUnverified(os.Args[2], &c)`)
)

func main() {
	helper := flag.String("helper", "bin/docker-credential-cgr", "the built binary (make build)")
	pairs := flag.Int("pairs", 300, "alternating runs of each binary")
	flag.Parse()
	if err := run(*helper, *pairs); err != nil {
		fmt.Fprintln(os.Stderr, "procbench:", err)
		os.Exit(1)
	}
}

func run(helper string, pairs int) error {
	helper, err := filepath.Abs(helper)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "procbench-")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(work); err != nil {
			fmt.Fprintln(os.Stderr, "procbench: cleaning up:", err)
		}
	}()

	baseline, err := buildBaseline(work, "baseline", baselineSrc)
	if err != nil {
		return err
	}
	withHTTP, err := buildBaseline(work, "nethttp", netHTTPSrc)
	if err != nil {
		return err
	}
	withHTTPSJWT, err := buildBaseline(work, "httpsjwt", httpsJWTSrc)
	if err != nil {
		return err
	}

	sb, err := sandbox.Start()
	if err != nil {
		return err
	}
	defer sb.Close()
	ambient, err := sb.Issuer.MintServiceAccountToken("bench", "puller")
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(work, "oidc-token")
	if err := os.WriteFile(tokenFile, []byte(ambient), 0o600); err != nil {
		return err
	}
	cacheDir := filepath.Join(work, "cache")
	env := []string{
		"HOME=" + work,
		"CHAINGUARD_ISSUER=" + sb.STS.URL(),
		"CHAINGUARD_REGISTRY=" + sb.Registry.Host(),
		"CHAINGUARD_IDENTITY=" + sandbox.DefaultIdentity,
		"CHAINGUARD_IDENTITY_TOKEN=" + tokenFile,
		"CHAINGUARD_CACHE_DIR=" + cacheDir,
	}
	get := func() *exec.Cmd {
		c := exec.Command(helper, "get")
		c.Env = env
		c.Stdin = strings.NewReader(sb.Registry.Host())
		return c
	}

	kubelet := func() *exec.Cmd {
		c := exec.Command(helper, "kubelet")
		c.Env = env
		c.Stdin = strings.NewReader(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"` +
			sb.Registry.Host() + `/chainguard/static:latest"}`)
		return c
	}

	fmt.Printf("machine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	if fi, err := os.Stat(helper); err == nil {
		fmt.Printf("binary size (%s): %.2f MiB (%d bytes)\n", filepath.Base(helper), float64(fi.Size())/(1<<20), fi.Size())
	}

	// 32 parallel cold gets.
	var wg sync.WaitGroup
	fails := 0
	var mu sync.Mutex
	t0 := time.Now()
	for range 32 {
		wg.Go(func() {
			if out, err := get().Output(); err != nil || !strings.Contains(string(out), `"Username":"_token"`) {
				mu.Lock()
				fails++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	fmt.Printf("32 parallel cold gets: %d STS requests, %d exchanges, %d failures, %s wall\n",
		sb.STS.Requests(), sb.STS.Exchanges(), fails, time.Since(t0).Round(time.Millisecond))
	if fails > 0 {
		return fmt.Errorf("%d of the parallel gets failed", fails)
	}

	entries, err := filepath.Glob(filepath.Join(cacheDir, "*.json"))
	if err != nil {
		return fmt.Errorf("listing the cache entries: %w", err)
	}
	if len(entries) != 1 {
		return fmt.Errorf("want one cache entry, found %d", len(entries))
	}
	small := entries[0] // the baselines read the very file the cached get reads

	before := sb.STS.Requests()
	var tGet, tBase, tHTTP, tJWT, tKubelet, ratios, ratiosHTTP, ratiosJWT, ratiosKubelet []float64
	for range pairs {
		g, err := timeRun(get())
		if err != nil {
			return fmt.Errorf("cached get: %w", err)
		}
		b, err := timeRun(exec.Command(baseline, small))
		if err != nil {
			return err
		}
		h, err := timeRun(exec.Command(withHTTP, small))
		if err != nil {
			return err
		}
		j, err := timeRun(exec.Command(withHTTPSJWT, small))
		if err != nil {
			return err
		}
		k, err := timeRun(kubelet())
		if err != nil {
			return fmt.Errorf("cached kubelet call: %w", err)
		}
		tGet, tBase, tHTTP, tJWT, tKubelet = append(tGet, g), append(tBase, b), append(tHTTP, h), append(tJWT, j), append(tKubelet, k)
		ratiosKubelet = append(ratiosKubelet, k/g)
		ratios = append(ratios, g/b)
		ratiosHTTP = append(ratiosHTTP, h/b)
		ratiosJWT = append(ratiosJWT, j/b)
	}
	if n := sb.STS.Requests() - before; n != 0 {
		return fmt.Errorf("the cached gets made %d STS requests; the cache is not being hit", n)
	}
	fmt.Printf("cached get, %d alternating pairs (median wall per process):\n", pairs)
	fmt.Printf("  docker-credential-cgr get   %.2f ms\n", median(tGet))
	fmt.Printf("  docker-credential-cgr kubelet %.2f ms\n", median(tKubelet))
	fmt.Printf("  baseline (read one file)    %.2f ms\n", median(tBase))
	fmt.Printf("  baseline + net/http linked  %.2f ms\n", median(tHTTP))
	fmt.Printf("  baseline + HTTPS + jwt      %.2f ms\n", median(tJWT))
	fmt.Printf("  ratio get/baseline: median %.2fx (p10 %.2fx, p90 %.2fx)\n", median(ratios), pct(ratios, 10), pct(ratios, 90))
	fmt.Printf("  ratio net/http baseline/baseline: median %.2fx\n", median(ratiosHTTP))
	fmt.Printf("  ratio HTTPS+jwt baseline/baseline: median %.2fx\n", median(ratiosJWT))
	fmt.Printf("  ratio kubelet/get: median %.2fx\n", median(ratiosKubelet))
	return nil
}

func buildBaseline(dir, name, src string) (string, error) {
	d := filepath.Join(dir, name+"-src")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(d, "main.go"), []byte(src), 0o600); err != nil {
		return "", err
	}
	// The project's own go.mod and go.sum, renamed, so golang-jwt resolves
	// to the version the product uses.
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		return "", fmt.Errorf("run from the repository root: %w", err)
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		return "", err
	}
	_, rest, _ := strings.Cut(string(mod), "\n")
	// gosec's taint analysis follows the bytes read from go.mod into these
	// writes; the paths themselves are our temporary folder and fixed names.
	if err := os.WriteFile(filepath.Join(d, "go.mod"), []byte("module "+name+"\n"+rest), 0o600); err != nil { //nolint:gosec // G703: the path is fixed, only the content came from a file
		return "", err
	}
	if err := os.WriteFile(filepath.Join(d, "go.sum"), sum, 0o600); err != nil { //nolint:gosec // G703: as above
		return "", err
	}
	out := filepath.Join(dir, name)
	c := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	c.Dir = d
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", name, err, b)
	}
	return out, nil
}

// timeRun runs c and returns its wall time in milliseconds.
func timeRun(c *exec.Cmd) (float64, error) {
	t0 := time.Now()
	err := c.Run()
	return float64(time.Since(t0).Microseconds()) / 1000, err
}

func median(xs []float64) float64 { return pct(xs, 50) }

func pct(xs []float64, p int) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}
