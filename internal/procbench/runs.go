package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// baseline is the least a credential helper can do: read a small file and
// print it. The variants link more without running it: net/http alone;
// and an HTTPS client call plus a golang-jwt parse, the floor for any
// helper that can exchange a token and read its expiry. work runs between
// the read and the write.
func baseline(imports, work, unreached string) string {
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
` + work + `
	if len(os.Args) > 2 { // never at run time; only so the linker keeps the code
` + unreached + `
	}
	os.Stdout.Write(b)
}
`
}

// calibrationPages is how many fresh pages the calibration floor touches.
const calibrationPages = 32

var (
	httpsJWTImports = `	"net/http"
	"github.com/golang-jwt/jwt/v5"`
	httpsJWTUnreached = `		http.Post(os.Args[2], "", nil)
		var c jwt.RegisteredClaims
		jwt.NewParser().ParseUnverified(os.Args[2], &c)`

	baselineSrc = baseline("", "", "")
	netHTTPSrc  = baseline(`	_ "net/http"`, "", "")
	httpsJWTSrc = baseline(httpsJWTImports, "", httpsJWTUnreached)
	// The floor, and then a page fault on each of calibrationPages fresh
	// pages: its ratio to the floor, in the same run, is what that many more
	// page faults cost a process here. The pages are mapped apart from Go's
	// heap, whose arenas huge pages may back (one fault for many pages), and
	// only written, so the work beside the faults is a few hundred
	// instructions.
	faultsSrc = baseline(httpsJWTImports+`
	"syscall"`, fmt.Sprintf(`	const pages = %d
	m, err := syscall.Mmap(-1, 0, pages*4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		os.Exit(1)
	}
	_ = syscall.Madvise(m, syscall.MADV_NOHUGEPAGE)
	for i := range pages {
		m[i*4096] = 1
	}`, calibrationPages), httpsJWTUnreached)

	// leanGetSrc is the floor doing a cached get's reads and nothing more:
	// the registry host from stdin, the ambient token's claims (found by
	// searching the decoded payload, not parsed), the cache key's SHA-256,
	// which must name the entry, the entry's token and expiry, and the
	// answer. It reads its files as the floor does, and checks nothing: no
	// config file, folder, owner, mode or link, no audience, no JSON. Its
	// ratio to the floor is what the work itself costs; a cached get's
	// ratio beyond it is the binary and the checks. It is run as
	// `leanget TOKEN-FILE ENTRY` with the helper's environment.
	leanGetSrc = `package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
` + httpsJWTImports + `
)

func main() {
	host, err := io.ReadAll(os.Stdin)
	if err != nil {
		os.Exit(1)
	}
	ambient, err := os.ReadFile(os.Args[1])
	if err != nil {
		os.Exit(1)
	}
	parts := strings.Split(strings.TrimSpace(string(ambient)), ".")
	if len(parts) != 3 {
		os.Exit(1)
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		os.Exit(1)
	}
` + keySrc + `	entry, err := os.ReadFile(os.Args[2])
	if err != nil {
		os.Exit(1)
	}
	rest, _ := strings.CutPrefix(string(entry), "{\"token\":\"")
	token, rest, _ := strings.Cut(rest, "\",\"expiry\":\"")
	exp, _, _ := strings.Cut(rest, "\"")
	expiry, err := time.Parse(time.RFC3339, exp)
	if err != nil || time.Until(expiry) < 5*time.Minute || filepath.Base(os.Args[2]) != key+".json" {
		os.Exit(1)
	}
	if len(os.Args) > 3 { // never at run time; only so the linker keeps the code
` + httpsJWTUnreached + `
	}
	os.Stdout.WriteString("{\"ServerURL\":\"" + strings.TrimSpace(string(host)) + "\",\"Username\":\"_token\",\"Secret\":\"" + token + "\"}\n")
}

` + claimSrc
)

// keySrc is the baselines' cache key: the entry's name, as the helper
// hashes it (creds.cacheKey) from the settings and the ambient token's
// claims, found by claimSrc's search.
var keySrc = `	audience := os.Getenv("CHAINGUARD_AUDIENCE")
	if audience == "" {
		audience = ` + strconv.Quote(creds.DefaultAudience) + `
	}
	h := sha256.New()
	for _, p := range []string{os.Getenv("CHAINGUARD_ISSUER"), os.Getenv("CHAINGUARD_IDENTITY"), audience, claim(claims, "iss"), claim(claims, "sub")} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	key := hex.EncodeToString(h.Sum(nil))[:40]
`

// claimSrc finds a claim's string value by searching the decoded claims.
const claimSrc = `// claim is the string value of the claim called name, found by searching.
func claim(payload []byte, name string) string {
	_, after, ok := bytes.Cut(payload, []byte("\""+name+"\":\""))
	value, _, ok2 := bytes.Cut(after, []byte("\""))
	if !ok || !ok2 {
		os.Exit(1)
	}
	return string(value)
}
`

// checkedGetSrc is the lean get with a cached get's checks added, in a
// straight line and in a floor-sized binary: about what the cache's
// guarantees cost beyond the reads, without our binary's size or layers.
// It makes each kind of check a hit makes (docs/security.md), some in a
// simpler form, so its cost is a lower bound:
//
//   - no config file to read (a stat);
//   - the token file stat-ed, opened without blocking, proved the same
//     regular file, size capped;
//   - the token's three parts base64url, its header and claims well-formed
//     JSON, its alg one golang-jwt knows, its exp in the future and its
//     audience the STS's: found by searching the claims, where the helper
//     walks them with exchange.ParseClaims (about 5 µs more, one run);
//   - the cache folder opened once and proved ours and private (the helper
//     opens it twice and proves the two the same);
//   - the entry lstat-ed, opened without following a link or blocking,
//     proved the same regular file, ours, private, size capped, read with
//     read(2) (the helper wraps each descriptor in an os.File: three
//     fcntl calls more);
//   - the entry's exact format, its token's characters, its expiry RFC 3339,
//     beyond the margin and within the trusted lifetime;
//   - the host, compared with CHAINGUARD_REGISTRY (the helper parses the
//     registries and normalises the host).
//
// It reads its files with raw system calls, not os.ReadFile as the lean get
// does, which starts Go's poller: part of what the lean get pays is not
// paid here. It is run as the lean get is, `checkedget TOKEN-FILE ENTRY`
// with the helper's environment and stdin, takes the folder from the
// entry's path, and exits 1 wherever it cannot answer as the helper would
// from the cache.
var checkedGetSrc = `package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
` + httpsJWTImports + `
)

func fail() { os.Exit(1) }

// readChecked reads the regular file name in the folder dir (AT_FDCWD: a
// path), checked as the helper checks it.
func readChecked(dir int, name string, follow, private bool) []byte {
	var before, st unix.Stat_t
	flags := unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	var err error
	if follow {
		err = unix.Stat(name, &before)
	} else {
		flags |= unix.O_NOFOLLOW
		err = unix.Fstatat(dir, name, &before, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil || before.Mode&unix.S_IFMT != unix.S_IFREG {
		fail()
	}
	fd, err := unix.Openat(dir, name, flags, 0)
	if err != nil {
		fail()
	}
	defer unix.Close(fd)
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != before.Dev || st.Ino != before.Ino || st.Size > 64<<10 {
		fail()
	}
	if private && (int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0) {
		fail()
	}
	b := make([]byte, st.Size+1)
	n := 0
	for {
		m, err := unix.Read(fd, b[n:])
		if err != nil {
			fail()
		}
		if m == 0 {
			return b[:n]
		}
		if n += m; n == len(b) {
			fail()
		}
	}
}

func jwtChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2
}

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		os.Exit(1)
	}
	host := strings.TrimSpace(string(in))
	if !strings.EqualFold(host, os.Getenv("CHAINGUARD_REGISTRY")) {
		fail()
	}
	var st unix.Stat_t
	if unix.Stat(filepath.Join(os.Getenv("HOME"), ".config", "docker-credential-cgr", "config.json"), &st) == nil {
		fail() // the helper would read it
	}
	raw := strings.TrimSpace(string(readChecked(unix.AT_FDCWD, os.Args[1], true, false)))
	parts := strings.Split(raw, ".")
	if !jwtChars(raw) {
		fail()
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || !json.Valid(header) || jwt.GetSigningMethod(claim(header, "alg")) == nil {
		fail()
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || !json.Valid(claims) {
		fail()
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		fail()
	}
	exp, err := strconv.ParseInt(claimNumber(claims, "exp"), 10, 64)
	if err != nil || !time.Now().Before(time.Unix(exp, 0)) || !bytes.Contains(claims, []byte(` + strconv.Quote(strconv.Quote(creds.EnforceAudience)) + `)) {
		fail()
	}
` + keySrc + `	if filepath.Base(os.Args[2]) != key+".json" {
		fail()
	}
	dir, err := unix.Open(filepath.Dir(os.Args[2])+"/.", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil || unix.Fstat(dir, &st) != nil || int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		fail()
	}
	entry := string(readChecked(dir, key+".json", false, true))
	rest, ok := strings.CutPrefix(entry, "{\"token\":\"")
	token, rest, ok2 := strings.Cut(rest, "\",\"expiry\":\"")
	stamp, rest, ok3 := strings.Cut(rest, "\"")
	if !ok || !ok2 || !ok3 || rest != "}" || !jwtChars(token) || strings.HasSuffix(token, ".") {
		fail()
	}
	expiry, err := time.Parse(time.RFC3339, stamp)
	if left := time.Until(expiry); err != nil || left <= time.Duration(` + strconv.FormatInt(int64(creds.Margin), 10) + `) || left > time.Hour+time.Minute {
		fail()
	}
	if len(os.Args) > 3 { // never at run time; only so the linker keeps the code
` + httpsJWTUnreached + `
	}
	os.Stdout.WriteString("{\"ServerURL\":" + strconv.Quote(host) + ",\"Username\":\"_token\",\"Secret\":\"" + token + "\"}\n")
}

` + claimSrc + `
func claimNumber(payload []byte, name string) string {
	_, after, ok := bytes.Cut(payload, []byte("\""+name+"\":"))
	end := bytes.IndexAny(after, ",}")
	if !ok || end < 0 {
		os.Exit(1)
	}
	return string(bytes.TrimSpace(after[:end]))
}
`

// baselines are the built baseline binaries, one per variant.
type baselines struct{ plain, netHTTP, httpsJWT, faults, leanGet, checkedGet string }

// baselineBuild is one baseline: the name it is built under, its source,
// and where in baselines its binary goes.
type baselineBuild struct {
	name, src string
	bin       *string
}

// builds lists every baseline once, for buildBaselines and the tests.
func (b *baselines) builds() []baselineBuild {
	return []baselineBuild{
		{"baseline", baselineSrc, &b.plain},
		{"nethttp", netHTTPSrc, &b.netHTTP},
		{"httpsjwt", httpsJWTSrc, &b.httpsJWT},
		{"httpsjwt-faults", faultsSrc, &b.faults},
		{"leanget", leanGetSrc, &b.leanGet},
		{"checkedget", checkedGetSrc, &b.checkedGet},
	}
}

func buildBaselines(work string) (baselines, error) {
	var b baselines
	for _, s := range b.builds() {
		var err error
		if *s.bin, err = buildBaseline(work, s.name, s.src); err != nil {
			return b, err
		}
	}
	return b, nil
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

// helperRuns makes the helper's commands, each a fresh process with the
// sandbox's environment, as docker and the kubelet start it.
type helperRuns struct {
	sb                                   *sandbox.Sandbox
	bin, host, work, cacheDir, tokenFile string
	// settings point the helper at the sandbox; env is them added to
	// outerEnv, which every helper run gets.
	settings, env []string
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
	settings := []string{
		"HOME=" + work,
		"CHAINGUARD_ISSUER=" + sb.STS.URL(),
		"CHAINGUARD_REGISTRY=" + sb.Registry.Host(),
		"CHAINGUARD_IDENTITY=" + sandbox.DefaultIdentity,
		"CHAINGUARD_IDENTITY_TOKEN=" + tokenFile,
		"CHAINGUARD_CACHE_DIR=" + cacheDir,
	}
	return &helperRuns{
		sb:        sb,
		bin:       helper,
		host:      sb.Registry.Host(),
		work:      work,
		cacheDir:  cacheDir,
		tokenFile: tokenFile,
		settings:  settings,
		env:       append(outerEnv(os.Environ()), settings...),
	}, nil
}

// outerEnv is the environment procbench was started with, less every
// variable the helper reads and the Go runtime's settings: docker and the
// kubelet pass a helper their whole environment, and a Go binary copies
// all of it at its first getenv (about 1,400 instructions a variable); a
// helper run with only its six settings was 2 to 3% faster, paired, with
// the 41 variables of a shell here.
func outerEnv(environ []string) []string {
	return slices.DeleteFunc(withoutGoSettings(environ), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HOME", "DOCKER_CONFIG", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "SSL_CERT_FILE", "SSL_CERT_DIR",
			"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY":
			return true
		}
		return strings.HasPrefix(name, "CHAINGUARD_") || strings.HasPrefix(name, "ACTIONS_")
	})
}

// withoutGoSettings is environ less the Go runtime's settings, which would
// change what is measured (GOMAXPROCS=1 made a cached get 7% faster). The
// floors and peers run with procbench's environment less these: as the
// helper, they copy it all at start-up (net/http's dependencies read
// GODEBUG at init), and a peer needs what it is usually given (without
// HOME, amazon-ecr-credential-helper's version took 2.3 times the floor's
// time, not 1.6).
func withoutGoSettings(environ []string) []string {
	return slices.DeleteFunc(environ, func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GODEBUG", "GOMAXPROCS", "GOGC", "GOMEMLIMIT":
			return true
		}
		return false
	})
}

// withCache is the environment with the cache in its own folder, dir
// under the work folder: a cold cache for each fleet and cold run.
// (os/exec runs a command with the last of two values of one variable.)
func (h *helperRuns) withCache(dir string) []string {
	return append(slices.Clone(h.env), "CHAINGUARD_CACHE_DIR="+filepath.Join(h.work, dir))
}

// under is p's command run by tool (valgrind, /usr/bin/time), which takes
// the command line after its own arguments, with p's environment and
// stdin, plus env.
func under(tool string, toolArgs []string, p proc, env ...string) *exec.Cmd {
	c := exec.Command(tool, append(append(toolArgs, p.cmd.Path), p.cmd.Args[1:]...)...)
	c.Env, c.Stdin = append(p.cmd.Environ(), env...), p.cmd.Stdin
	return c
}

// wantGet is what a get that answered with a credential prints.
const wantGet = `"Username":"_token"`

// wantKubelet is what a kubelet-mode call that answered prints.
const wantKubelet = `"kind":"CredentialProviderResponse"`

func (h *helperRuns) get(env []string) proc { return getWith(h.bin, h.host, env) }

func getWith(bin, host string, env []string) proc {
	c := exec.Command(bin, "get")
	c.Env = env
	c.Stdin = strings.NewReader(host)
	return proc{c, wantGet}
}

// kubelet is a kubelet-mode call; saToken, when set, is the pod's
// service-account token the kubelet passes in service-account mode.
func (h *helperRuns) kubelet(env []string, saToken string) proc {
	return kubeletWith(h.bin, h.host, env, saToken)
}

func kubeletWith(bin, host string, env []string, saToken string) proc {
	c := exec.Command(bin, "kubelet")
	c.Env = env
	sa := ""
	if saToken != "" {
		sa = `,"serviceAccountToken":"` + saToken + `"`
	}
	c.Stdin = strings.NewReader(`{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"` +
		host + `/chainguard/static:latest"` + sa + `}`)
	return proc{c, wantKubelet}
}

// proc is one process to start, and what its stdout must contain.
type proc struct {
	cmd  *exec.Cmd
	want string
}

// sample is one finished process: wall time and CPU time (user plus
// system, from wait4), in milliseconds. CPU time is steadier than wall
// time on a shared machine, and says whether a change cut work or only
// waiting.
type sample struct{ ms, cpuMs, faults float64 }

// timeRun starts r and waits for it. A non-zero exit, or stdout without
// r.want, is an error. Only a failed process's output is shown: a
// successful get's stdout holds a token.
func timeRun(r proc) (sample, error) {
	var stdout, stderr bytes.Buffer
	r.cmd.Stdout, r.cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := r.cmd.Run()
	s := sample{ms: float64(time.Since(t0).Microseconds()) / 1000}
	if ps := r.cmd.ProcessState; ps != nil {
		s.cpuMs = float64((ps.UserTime() + ps.SystemTime()).Microseconds()) / 1000
		s.faults = pageFaults(ps)
	}
	name := filepath.Base(r.cmd.Path) + " " + strings.Join(r.cmd.Args[1:], " ")
	if err != nil {
		return s, fmt.Errorf("%s: %w: %s", name, err, clip(stdout.String()+stderr.String()))
	}
	if !strings.Contains(stdout.String(), r.want) {
		return s, fmt.Errorf("%s: exit 0, but its output lacks %s", name, r.want)
	}
	return s, nil
}

// clip keeps a failed process's message short.
func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// onlyCacheEntry is the one entry file in the cache.
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

// timeBin measures peak RSS. Not wait4's rusage of our own children: Go
// starts them with vfork, so until exec a child shares this process's
// memory, and Linux keeps that high-water mark across exec.
const timeBin = "/usr/bin/time"

// peakRSS runs r under /usr/bin/time -f %M, n times, and returns the
// median peak RSS in KiB; 0, nil when /usr/bin/time is missing. after,
// if not nil, is called after each run (the cold runs check their
// exchange there).
func peakRSS(next func() proc, n int, after func() error) (int64, error) {
	if _, err := os.Stat(timeBin); err != nil {
		return 0, nil //nolint:nilerr // not measured, said in the report
	}
	out, err := os.CreateTemp("", "procbench-rss-")
	if err != nil {
		return 0, err
	}
	_ = out.Close()
	defer func() { _ = os.Remove(out.Name()) }()
	var kib []float64
	for range n {
		r := next()
		if _, err := timeRun(proc{under(timeBin, []string{"-f", "%M", "-o", out.Name()}, r), r.want}); err != nil {
			return 0, err
		}
		if after != nil {
			if err := after(); err != nil {
				return 0, err
			}
		}
		b, err := os.ReadFile(out.Name())
		if err != nil {
			return 0, err
		}
		var k float64
		if _, err := fmt.Sscan(string(b), &k); err != nil {
			return 0, fmt.Errorf("reading %s's output %q: %w", timeBin, b, err)
		}
		kib = append(kib, k)
	}
	return int64(median(kib)), nil
}

// stageAll copies every binary to be timed into one folder, the same way,
// copies times each.
//
// How a file's pages sit in the page cache shows in exec. The same bytes
// as the Go linker left them (written through mmap) started about 25%
// slower than a plain copy of them on the machine in docs/benchmarks.md.
// Plain copies still differ: with large folios in the page cache, a copy
// that got them is mapped in fewer page faults, and whether it got them
// depends on the memory free when it was read. Staged once each, in a
// fixed order, copies of the same bytes differed by a few percent. So each
// binary is staged in several copies, one pass over all of them at a
// time, each pass in a new random order, and the loop takes each copy in
// turn: what is measured is the binary, not one copy's luck.
func stageAll(work, helper string, o options, b baselines, copies int) (staged, error) {
	dir := filepath.Join(work, "staged")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return staged{}, err
	}
	var st staged
	type set struct {
		src string
		dst *[]string
	}
	sets := []set{{helper, &st.get}, {helper, &st.kubelet}, {helper, &st.version}, {b.plain, &st.plain}, {b.netHTTP, &st.netHTTP}, {b.httpsJWT, &st.httpsJWT}, {b.faults, &st.faults}, {b.leanGet, &st.leanGet}, {b.checkedGet, &st.checkedGet}}
	if o.against != "" {
		sets = append(sets, set{o.against, &st.against}, set{helper, &st.again})
	}
	st.peers = make([][]string, len(o.peers))
	for i, p := range o.peers {
		sets = append(sets, set{p.path, &st.peers[i]})
	}
	order := make([]int, len(sets))
	for i := range order {
		order[i] = i
	}
	for pass := range copies {
		rand.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] }) //nolint:gosec // G404: an order, not a secret
		for _, i := range order {
			// One folder per copy keeps each binary's own name, which the
			// helpers use in messages.
			sub := filepath.Join(dir, fmt.Sprintf("%d-%d", i, pass))
			if err := os.Mkdir(sub, 0o700); err != nil {
				return staged{}, err
			}
			src := sets[i].src
			dst := filepath.Join(sub, filepath.Base(src))
			if err := copyFile(src, dst); err != nil {
				return staged{}, fmt.Errorf("staging %s: %w", src, err)
			}
			if err := settle(dst); err != nil {
				return staged{}, fmt.Errorf("staging %s: %w", src, err)
			}
			*sets[i].dst = append(*sets[i].dst, dst)
		}
	}
	return st, nil
}

// staged holds the copies of every timed binary, by the part it plays.
// Every loop command has copies of its own: a binary run three times a
// round, from one copy, ran its get 4 to 6% faster than a copy run once a
// round (its pages were still in the processor's caches), which flattered
// every ratio to the floor, run once a round.
type staged struct {
	// get, kubelet and version are the helper's, for those loop commands;
	// get's first copy also serves the fleets, cold runs and priming.
	get, kubelet, version []string
	// against is -against's build; again another set of the helper, timed
	// beside it: its ratio to get is what the same bytes differ by in this
	// run, the noise a before/after ratio must beat. Both nil without
	// -against.
	against, again           []string
	plain, netHTTP, httpsJWT []string
	faults                   []string   // the floor with calibrationPages page faults more
	leanGet                  []string   // the floor doing a cached get's reads
	checkedGet               []string   // and its checks
	peers                    [][]string // in options.peers' order
}

func copyFile(src, dst string) error {
	in, err := os.Open(src) //nolint:gosec // G304: a binary named on our own command line
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700) //nolint:gosec // G302: it is to be executed
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
