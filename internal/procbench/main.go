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

	bases, err := buildBaselines(work)
	if err != nil {
		return err
	}
	sb, err := sandbox.Start()
	if err != nil {
		return err
	}
	defer sb.Close()
	h, err := newHelperRuns(sb, helper, work)
	if err != nil {
		return err
	}

	printMachine(helper)
	if err := parallelColdGets(sb, h); err != nil {
		return err
	}
	small, err := onlyCacheEntry(h.cacheDir) // the baselines read the very file the cached get reads
	if err != nil {
		return err
	}
	before := sb.STS.Requests()
	t, err := timePairs(h, bases, small, pairs)
	if err != nil {
		return err
	}
	if n := sb.STS.Requests() - before; n != 0 {
		return fmt.Errorf("the cached gets made %d STS requests; the cache is not being hit", n)
	}
	t.print(pairs)
	return nil
}

// baselines are the built baseline binaries, one per variant.
type baselines struct{ plain, netHTTP, httpsJWT string }

func buildBaselines(work string) (baselines, error) {
	var b baselines
	var err error
	if b.plain, err = buildBaseline(work, "baseline", baselineSrc); err != nil {
		return b, err
	}
	if b.netHTTP, err = buildBaseline(work, "nethttp", netHTTPSrc); err != nil {
		return b, err
	}
	b.httpsJWT, err = buildBaseline(work, "httpsjwt", httpsJWTSrc)
	return b, err
}

// helperRuns makes the helper's commands, each a fresh process with the
// sandbox's environment, as docker and the kubelet start it.
type helperRuns struct {
	bin, host, cacheDir string
	env                 []string
}

// newHelperRuns mints the ambient token into work and sets the environment
// that points the helper at the sandbox.
func newHelperRuns(sb *sandbox.Sandbox, helper, work string) (*helperRuns, error) {
	ambient, err := sb.Issuer.MintServiceAccountToken("bench", "puller")
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(work, "oidc-token")
	if err := os.WriteFile(tokenFile, []byte(ambient), 0o600); err != nil {
		return nil, err
	}
	cacheDir := filepath.Join(work, "cache")
	return &helperRuns{
		bin:      helper,
		host:     sb.Registry.Host(),
		cacheDir: cacheDir,
		env: []string{
			"HOME=" + work,
			"CHAINGUARD_ISSUER=" + sb.STS.URL(),
			"CHAINGUARD_REGISTRY=" + sb.Registry.Host(),
			"CHAINGUARD_IDENTITY=" + sandbox.DefaultIdentity,
			"CHAINGUARD_IDENTITY_TOKEN=" + tokenFile,
			"CHAINGUARD_CACHE_DIR=" + cacheDir,
		},
	}, nil
}

func (h *helperRuns) get() *exec.Cmd {
	c := exec.Command(h.bin, "get")
	c.Env = h.env
	c.Stdin = strings.NewReader(h.host)
	return c
}

func (h *helperRuns) kubelet() *exec.Cmd {
	c := exec.Command(h.bin, "kubelet")
	c.Env = h.env
	c.Stdin = strings.NewReader(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"` +
		h.host + `/chainguard/static:latest"}`)
	return c
}

func printMachine(helper string) {
	fmt.Printf("machine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	if fi, err := os.Stat(helper); err == nil {
		fmt.Printf("binary size (%s): %.2f MiB (%d bytes)\n", filepath.Base(helper), float64(fi.Size())/(1<<20), fi.Size())
	}
}

// parallelColdGets runs 32 gets at once against an empty cache and reports
// how many exchanges they cost; every get must answer with a credential.
func parallelColdGets(sb *sandbox.Sandbox, h *helperRuns) error {
	var wg sync.WaitGroup
	fails := 0
	var mu sync.Mutex
	t0 := time.Now()
	for range 32 {
		wg.Go(func() {
			if out, err := h.get().Output(); err != nil || !strings.Contains(string(out), `"Username":"_token"`) {
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
	return nil
}

// onlyCacheEntry is the one file the cold gets left in the cache.
func onlyCacheEntry(cacheDir string) (string, error) {
	entries, err := filepath.Glob(filepath.Join(cacheDir, "*.json"))
	if err != nil {
		return "", fmt.Errorf("listing the cache entries: %w", err)
	}
	if len(entries) != 1 {
		return "", fmt.Errorf("want one cache entry, found %d", len(entries))
	}
	return entries[0], nil
}

// timings are wall times in milliseconds, one per pair, index i of each
// slice from the same pair.
type timings struct{ get, kubelet, base, netHTTP, httpsJWT []float64 }

// timePairs runs each binary once per pair, alternating, so that drift in
// the machine's load hits all of them alike.
func timePairs(h *helperRuns, b baselines, small string, pairs int) (timings, error) {
	var t timings
	for range pairs {
		g, err := timeRun(h.get())
		if err != nil {
			return t, fmt.Errorf("cached get: %w", err)
		}
		base, err := timeRun(exec.Command(b.plain, small))
		if err != nil {
			return t, err
		}
		nh, err := timeRun(exec.Command(b.netHTTP, small))
		if err != nil {
			return t, err
		}
		j, err := timeRun(exec.Command(b.httpsJWT, small))
		if err != nil {
			return t, err
		}
		k, err := timeRun(h.kubelet())
		if err != nil {
			return t, fmt.Errorf("cached kubelet call: %w", err)
		}
		t.get, t.base, t.netHTTP, t.httpsJWT, t.kubelet = append(t.get, g), append(t.base, base), append(t.netHTTP, nh), append(t.httpsJWT, j), append(t.kubelet, k)
	}
	return t, nil
}

func (t timings) print(pairs int) {
	ratios := perPair(t.get, t.base)
	fmt.Printf("cached get, %d alternating pairs (median wall per process):\n", pairs)
	fmt.Printf("  docker-credential-cgr get   %.2f ms\n", median(t.get))
	fmt.Printf("  docker-credential-cgr kubelet %.2f ms\n", median(t.kubelet))
	fmt.Printf("  baseline (read one file)    %.2f ms\n", median(t.base))
	fmt.Printf("  baseline + net/http linked  %.2f ms\n", median(t.netHTTP))
	fmt.Printf("  baseline + HTTPS + jwt      %.2f ms\n", median(t.httpsJWT))
	fmt.Printf("  ratio get/baseline: median %.2fx (p10 %.2fx, p90 %.2fx)\n", median(ratios), pct(ratios, 10), pct(ratios, 90))
	fmt.Printf("  ratio net/http baseline/baseline: median %.2fx\n", median(perPair(t.netHTTP, t.base)))
	fmt.Printf("  ratio HTTPS+jwt baseline/baseline: median %.2fx\n", median(perPair(t.httpsJWT, t.base)))
	fmt.Printf("  ratio kubelet/get: median %.2fx\n", median(perPair(t.kubelet, t.get)))
}

// perPair is num[i]/den[i] for each pair i: the ratio within a pair, where
// both ran under the same load.
func perPair(num, den []float64) []float64 {
	r := make([]float64, len(num))
	for i := range num {
		r[i] = num[i] / den[i]
	}
	return r
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
