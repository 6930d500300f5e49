//go:build e2e

package e2e

// The abuse suite for what needs root and a second user (issue 7, classes 3,
// 4 and 5): the built binary runs as root, as it does on every Kubernetes
// node, against the sandbox's issuer and STS, while a throwaway user owns the
// files it is offered. Each test states the intended behaviour; none prints
// a token, even when it fails.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"

	"github.com/cgr-helper/docker-credential-cgr/test/internal/child"
)

// abuseRegistry is the registry the helper serves in these tests. It is
// never contacted: `get` only talks to the STS.
const abuseRegistry = "registry.abuse.test"

// abuseRunTimeout bounds one helper run. It is well under the helper's own
// 30-second deadline, so a run that blocks (on a FIFO, say) fails the test
// instead of passing late.
const abuseRunTimeout = 10 * time.Second

// abuseWorld is the sandbox these tests share: an issuer, an STS that trusts
// it, and an ambient token file.
type abuseWorld struct {
	issuer      *sandbox.Issuer
	sts         *sandbox.STS
	ambient     string // the ambient token itself
	ambientFile string
}

var (
	abuseOnce   sync.Once
	abuseShared *abuseWorld
	abuseErr    error
)

func abuseSandbox(t *testing.T) *abuseWorld {
	t.Helper()
	abuseOnce.Do(func() { abuseShared, abuseErr = newAbuseWorld() })
	require.NoError(t, abuseErr, "starting the sandbox")
	return abuseShared
}

func newAbuseWorld() (*abuseWorld, error) {
	w := &abuseWorld{}
	var err error
	if w.issuer, err = sandbox.NewIssuer(); err != nil {
		return nil, err
	}
	atExit(w.issuer.Close)
	if w.sts, err = sandbox.NewSTS(); err != nil {
		return nil, err
	}
	atExit(w.sts.Close)
	w.sts.AddIdentity(sandbox.DefaultIdentity, sandbox.Identity{Issuer: w.issuer.URL(), SubjectPattern: sandbox.DefaultSubjectPattern})
	if w.ambient, err = w.issuer.MintServiceAccountToken("abuse", "puller", sandbox.WithLifetime(3*time.Hour)); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cgr-abuse-")
	if err != nil {
		return nil, err
	}
	atExit(func() { _ = os.RemoveAll(dir) })
	// Root-owned and readable by others, as a projected token is in a pod:
	// the config-file trust rule does not apply to the token file.
	w.ambientFile = filepath.Join(dir, "oidc-token")
	return w, os.WriteFile(w.ambientFile, []byte(w.ambient), 0o644)
}

// needRoot skips the test unless it runs as root; in CI a missing root is a
// failure, since this suite is then not run anywhere.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := "the abuse suite runs the helper as root, as on a Kubernetes node, and creates a second user: run `make e2e` as root"
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// otherUser is a throwaway system user, removed when the test ends.
type otherUser struct {
	name     string
	uid, gid int
}

func newOtherUser(t *testing.T) otherUser {
	t.Helper()
	needRoot(t)
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	name := "cgr-abuse-" + hex.EncodeToString(b)
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	require.NoError(t, err, "useradd %s: %s", name, out)
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	require.NoError(t, err)
	uid, err := strconv.Atoi(u.Uid)
	require.NoError(t, err)
	gid, err := strconv.Atoi(u.Gid)
	require.NoError(t, err)
	return otherUser{name, uid, gid}
}

// chown gives path (not a link's target) to u.
func (u otherUser) chown(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, os.Lchown(path, u.uid, u.gid))
}

// abuseEnv is one helper setup: its own HOME, XDG_CONFIG_HOME and cache
// folder, and the sandbox's STS and ambient token.
type abuseEnv struct {
	w    *abuseWorld
	dir  string
	vars map[string]string
	// issued collects every registry token a run printed, so later runs
	// can be checked never to show one where they should not.
	issued []string
}

func newAbuseEnv(t *testing.T) *abuseEnv {
	t.Helper()
	w := abuseSandbox(t)
	dir := t.TempDir()
	for _, d := range []string{"home", "config"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o700))
	}
	return &abuseEnv{w: w, dir: dir, vars: map[string]string{
		"PATH":                      os.Getenv("PATH"),
		"HOME":                      filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME":           filepath.Join(dir, "config"),
		"CHAINGUARD_ISSUER":         w.sts.URL(),
		"CHAINGUARD_REGISTRY":       abuseRegistry,
		"CHAINGUARD_IDENTITY":       sandbox.DefaultIdentity,
		"CHAINGUARD_IDENTITY_TOKEN": w.ambientFile,
		"CHAINGUARD_CACHE_DIR":      filepath.Join(dir, "cache"),
	}}
}

// configFile is where the helper reads its own config file in e.
func (e *abuseEnv) configFile() string {
	return filepath.Join(e.vars["XDG_CONFIG_HOME"], "docker-credential-cgr", "config.json")
}

// abuseRun is what one `get` did.
type abuseRun struct {
	stdout, stderr string
	err            error
	took           time.Duration
}

func (r abuseRun) output() string { return r.stdout + r.stderr }

// get runs `docker-credential-cgr get` for the served registry, with a
// deadline that fails the test rather than letting it hang. It checks that
// neither stream shows the ambient token, that stderr never shows a
// registry token, and that a failure shows no registry token issued before.
func (e *abuseEnv) get(t *testing.T) abuseRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), abuseRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, helperBinary, "get")
	cmd.Dir = e.dir
	for _, k := range slices.Sorted(maps.Keys(e.vars)) {
		cmd.Env = append(cmd.Env, k+"="+e.vars[k])
	}
	cmd.Stdin = strings.NewReader("https://" + abuseRegistry + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = child.Attrs()
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := abuseRun{stdout: stdout.String(), stderr: stderr.String(), err: err, took: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("get did not finish within %s (it must never block): %v", abuseRunTimeout, err)
	}
	status := "ok"
	if err != nil {
		status = err.Error()
	}
	t.Logf("$ docker-credential-cgr get -> %s after %s\n%s", status, r.took.Round(time.Millisecond), indent(shorten(child.Redact(r.output()))))

	assert.False(t, strings.Contains(r.output(), e.w.ambient), "the output shows the ambient token")
	assert.False(t, child.JWTLike.MatchString(r.stderr), "stderr shows something token-like")
	if err != nil {
		assert.False(t, child.JWTLike.MatchString(r.output()), "a failure shows something token-like")
		for _, tok := range e.issued {
			assert.False(t, strings.Contains(r.output(), tok), "a failure shows a registry token issued earlier")
		}
	}
	return r
}

// answered checks that r is a successful get with a registry token the
// sandbox STS issued for the right identity, and returns the token.
func (e *abuseEnv) answered(t *testing.T, r abuseRun) string {
	t.Helper()
	require.NoError(t, r.err, "get must answer")
	var creds struct{ ServerURL, Username, Secret string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &creds), "stdout is the credentials JSON")
	assert.Equal(t, "_token", creds.Username)
	subject, err := e.w.sts.VerifyToken(creds.Secret, sandbox.RegistryAudience)
	require.NoError(t, err, "the secret is a registry token the sandbox STS issued")
	assert.Equal(t, sandbox.DefaultIdentity, subject)
	e.issued = append(e.issued, creds.Secret)
	return creds.Secret
}

// failed checks that r failed (exit 1, the docker protocol's failure) with
// a message that names path and holds one of fixes.
func failed(t *testing.T, r abuseRun, path string, fixes ...string) {
	t.Helper()
	require.Error(t, r.err, "get must fail")
	out := r.output()
	// Not assert.Contains: it would print the output, and a failing
	// helper might have put a secret in it.
	assert.True(t, strings.Contains(out, path), "the message names the file %s", path)
	lower := strings.ToLower(out)
	assert.True(t, slices.ContainsFunc(fixes, func(f string) bool { return strings.Contains(lower, f) }),
		"the message says how to fix it (one of %q)", fixes)
}

// cacheFile matches the cache's file names: a 40-hex key and .json or .lock.
var cacheFile = regexp.MustCompile(`^[0-9a-f]{40}\.(json|lock)$`)

// cacheFiles finds the entry and lock files under dir, wherever the cache
// keeps them (the folder itself or a private subfolder of it).
func cacheFiles(t *testing.T, dir string) (entries, locks []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && cacheFile.MatchString(d.Name()) {
			if strings.HasSuffix(p, ".json") {
				entries = append(entries, p)
			} else {
				locks = append(locks, p)
			}
		}
		return nil
	})
	require.NoError(t, err)
	return entries, locks
}

// learnEntry runs one get into a fresh cache and returns the paths of the
// entry it wrote and of its lock file.
func (e *abuseEnv) learnEntry(t *testing.T) (entry, lock string) {
	t.Helper()
	e.answered(t, e.get(t))
	entries, _ := cacheFiles(t, e.vars["CHAINGUARD_CACHE_DIR"])
	require.Len(t, entries, 1, "one get writes one cache entry")
	entry = entries[0]
	return entry, strings.TrimSuffix(entry, ".json") + ".lock"
}

func plantedToken(t *testing.T, who string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://planted.example", "sub": "planted-by-" + who, "aud": sandbox.RegistryAudience,
		"exp": time.Now().Add(2 * time.Hour).Unix(),
	}).SignedString([]byte("not the STS's key"))
	require.NoError(t, err)
	return tok
}

// plantedEntry is a cache entry as the helper writes one, valid for 50
// minutes, holding tok: its fields in the helper's order, which the
// reader insists on.
func plantedEntry(t *testing.T, tok string) []byte {
	t.Helper()
	b, err := json.Marshal(struct {
		Token  string    `json:"token"`
		Expiry time.Time `json:"expiry"`
	}{tok, time.Now().Add(50 * time.Minute).UTC()})
	require.NoError(t, err)
	return b
}

func owner(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// (a) A config file another user owns, or that group or others may write,
// is refused like ssh refuses its config: exit non-zero, naming the file and
// the fix. It names the STS the ambient token is sent to, so trusting it
// would hand root's token to whoever wrote it.
func TestAbuseUntrustedConfigFile(t *testing.T) {
	other := newOtherUser(t)
	// The STS a hostile writer would name: it records whether a bearer
	// token ever reaches it.
	var sent atomic.Int32
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			sent.Add(1)
		}
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer attacker.Close()
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner func(t *testing.T, path string)
		fixes []string
	}{
		{"owned by another user", 0o600, other.chown, []string{"chown", "remove"}},
		{"writable by group and others", 0o666, func(*testing.T, string) {}, []string{"chmod", "remove"}},
		{"writable by group", 0o620, func(*testing.T, string) {}, []string{"chmod", "remove"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAbuseEnv(t)
			path := e.configFile()
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
			// What a hostile writer would put there: an STS of its own.
			body := fmt.Sprintf(`{"identity": %q, "issuer": %q}`, sandbox.DefaultIdentity, attacker.URL)
			require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
			require.NoError(t, os.Chmod(path, tc.mode)) // past the umask
			tc.owner(t, path)
			// The environment must not paper over the file.
			delete(e.vars, "CHAINGUARD_ISSUER")
			delete(e.vars, "CHAINGUARD_IDENTITY")

			before := sent.Load()
			r := e.get(t)
			assert.Equal(t, before, sent.Load(), "root's ambient token was sent to the STS the untrusted file names")
			failed(t, r, path, tc.fixes...)
			assert.Equal(t, 0, strings.Count(strings.TrimRight(r.output(), "\n"), "\n"), "the reason is one line")
		})
	}

	t.Run("a trusted file is used", func(t *testing.T) {
		e := newAbuseEnv(t)
		path := e.configFile()
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		body := fmt.Sprintf(`{"identity": %q, "issuer": %q}`, sandbox.DefaultIdentity, e.w.sts.URL())
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		delete(e.vars, "CHAINGUARD_ISSUER")
		delete(e.vars, "CHAINGUARD_IDENTITY")
		e.answered(t, e.get(t))
	})
}

// (b) A cache folder another user owns is not the helper's: get still
// answers, without the cache, and writes nothing there nor changes it.
func TestAbuseForeignCacheFolder(t *testing.T) {
	other := newOtherUser(t)
	for _, mode := range []os.FileMode{0o700, 0o755} {
		t.Run(fmt.Sprintf("mode %04o", mode), func(t *testing.T) {
			e := newAbuseEnv(t)
			dir := filepath.Join(e.dir, "theirs")
			require.NoError(t, os.Mkdir(dir, 0o700))
			require.NoError(t, os.Chmod(dir, mode))
			other.chown(t, dir)
			e.vars["CHAINGUARD_CACHE_DIR"] = dir

			e.answered(t, e.get(t))
			e.answered(t, e.get(t))
			left, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, left, "nothing is written in another user's folder")
			fi, err := os.Lstat(dir)
			require.NoError(t, err)
			assert.Equal(t, mode, fi.Mode().Perm(), "the folder's mode is unchanged")
			assert.Equal(t, other.uid, owner(t, dir), "the folder's owner is unchanged")
		})
	}
}

// (c) An entry another user planted where root's entry goes is ignored and
// replaced: its token is never served.
func TestAbusePlantedCacheEntry(t *testing.T) {
	other := newOtherUser(t)
	for _, mode := range []os.FileMode{0o600, 0o644} {
		t.Run(fmt.Sprintf("mode %04o", mode), func(t *testing.T) {
			e := newAbuseEnv(t)
			entry, _ := e.learnEntry(t)
			planted := plantedToken(t, other.name)
			require.NoError(t, os.Remove(entry))
			require.NoError(t, os.WriteFile(entry, plantedEntry(t, planted), 0o600))
			require.NoError(t, os.Chmod(entry, mode))
			other.chown(t, entry)

			r := e.get(t)
			assert.False(t, strings.Contains(r.output(), planted), "the planted token is served")
			e.answered(t, r)

			b, err := os.ReadFile(entry)
			require.NoError(t, err, "the entry is rewritten")
			assert.False(t, strings.Contains(string(b), planted), "the planted entry is replaced")
			assert.Equal(t, os.Geteuid(), owner(t, entry), "the entry is root's again")
			assert.False(t, strings.Contains(e.get(t).output(), planted), "nor served later")
		})
	}
	// Control: the same entry, root's own and private, is served. So the
	// planted one above is refused for its owner, not for its shape.
	t.Run("control: root's own entry is served", func(t *testing.T) {
		e := newAbuseEnv(t)
		entry, _ := e.learnEntry(t)
		planted := plantedToken(t, "root")
		require.NoError(t, os.WriteFile(entry, plantedEntry(t, planted), 0o600))
		assert.True(t, strings.Contains(e.get(t).output(), planted), "a well-formed entry of root's is served")
	})
}

// (d) A symlink planted at an entry or lock path is never followed: its
// target is neither created nor written, and get still answers.
func TestAbuseSymlinkPlants(t *testing.T) {
	other := newOtherUser(t)
	for _, which := range []string{"entry", "lock", "both"} {
		for _, exists := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, target exists %v", which, exists), func(t *testing.T) {
				e := newAbuseEnv(t)
				entry, lock := e.learnEntry(t)
				outside := t.TempDir()
				var plants []string
				if which != "lock" {
					plants = append(plants, entry)
				}
				if which != "entry" {
					plants = append(plants, lock)
				}
				targets := map[string]string{}
				for i, p := range plants {
					target := filepath.Join(outside, fmt.Sprintf("target-%d", i))
					if exists {
						require.NoError(t, os.WriteFile(target, []byte("original\n"), 0o644))
						other.chown(t, target)
					}
					if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
						require.NoError(t, err)
					}
					require.NoError(t, os.Symlink(target, p))
					other.chown(t, p)
					targets[p] = target
				}
				// An expired entry is not the point: make every get a miss
				// by removing the entry if it is not itself a plant.
				if which == "lock" {
					require.NoError(t, os.Remove(entry))
				}

				e.answered(t, e.get(t))
				e.answered(t, e.get(t))
				for p, target := range targets {
					fi, err := os.Lstat(target)
					if !exists {
						assert.True(t, os.IsNotExist(err), "the target of the link planted at %s is created", filepath.Base(p))
						continue
					}
					require.NoError(t, err)
					b, err := os.ReadFile(target)
					require.NoError(t, err)
					assert.Equal(t, "original\n", string(b), "the target of the link planted at %s is written", filepath.Base(p))
					assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "the target's mode is changed")
					assert.Equal(t, other.uid, owner(t, target), "the target's owner is changed")
				}
			})
		}
	}
}

// (e) A FIFO given as the token file, or found as the config file, fails at
// once with an error naming the path: nothing is opened in a way that can
// block, so a planted FIFO cannot hang every pull.
func TestAbuseFIFOs(t *testing.T) {
	needRoot(t)
	t.Run("token file", func(t *testing.T) {
		e := newAbuseEnv(t)
		fifo := filepath.Join(e.dir, "oidc-token")
		require.NoError(t, syscall.Mkfifo(fifo, 0o644))
		e.vars["CHAINGUARD_IDENTITY_TOKEN"] = fifo
		r := e.get(t)
		failed(t, r, fifo, "fifo", "named pipe", "not a regular file")
		assert.Less(t, r.took, 5*time.Second, "it fails at once")
	})
	t.Run("config file", func(t *testing.T) {
		e := newAbuseEnv(t)
		path := e.configFile()
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, syscall.Mkfifo(path, 0o600))
		r := e.get(t)
		failed(t, r, path, "fifo", "named pipe", "not a regular file")
		assert.Less(t, r.took, 5*time.Second, "it fails at once")
	})
	t.Run("cache entry", func(t *testing.T) {
		// Class 3: an odd entry is a miss, never a hang.
		e := newAbuseEnv(t)
		entry, _ := e.learnEntry(t)
		require.NoError(t, os.Remove(entry))
		require.NoError(t, syscall.Mkfifo(entry, 0o600))
		r := e.get(t)
		e.answered(t, r)
		assert.Less(t, r.took, 5*time.Second, "a FIFO entry is a miss at once")
	})
}

// (f) A shared folder (mode 1777, like /tmp) given as CHAINGUARD_CACHE_DIR
// keeps its mode: the helper never re-modes a folder it did not create, and
// the sticky bit that protects its other users' files stays.
func TestAbuseSharedCacheFolderKeepsItsMode(t *testing.T) {
	needRoot(t)
	e := newAbuseEnv(t)
	dir := filepath.Join(e.dir, "shared")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chmod(dir, 0o777|os.ModeSticky))
	e.vars["CHAINGUARD_CACHE_DIR"] = dir

	e.answered(t, e.get(t))
	e.answered(t, e.get(t))
	fi, err := os.Lstat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.ModeDir|os.ModeSticky|0o777, fi.Mode(), "the shared folder's mode, sticky bit included, is unchanged")
	// Whatever the helper keeps there is not readable by the folder's
	// other users.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		assert.Zero(t, info.Mode().Perm()&0o077, "%s is open to others (mode %v)", strings.TrimPrefix(p, dir), info.Mode().Perm())
		return nil
	})
	require.NoError(t, err)
}
