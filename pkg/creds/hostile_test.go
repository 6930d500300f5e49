//go:build unix

package creds

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

// assertNoSecret fails if msg holds secret or any long dot-separated part of
// it, without ever printing either.
func assertNoSecret(t *testing.T, msg, secret, what string) {
	t.Helper()
	assert.False(t, strings.Contains(msg, secret), "%s: the whole secret leaked", what)
	for i, part := range strings.Split(secret, ".") {
		if len(part) >= 16 {
			assert.False(t, strings.Contains(msg, part), "%s: part %d of the secret leaked", what, i)
		}
	}
	assert.False(t, strings.ContainsAny(msg, "\r\n"), "%s: the message is not one line", what)
}

// A value of CHAINGUARD_IDENTITY_TOKEN that is not a bare JWT used to be
// taken as a path and echoed whole, signature included. Whatever its shape,
// the value never appears; the message describes it.
func TestIdentityTokenValueIsNeverEchoed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	jwt := f.ambient
	for name, value := range map[string]string{
		"double quoted":   `"` + jwt + `"`,
		"single quoted":   `'` + jwt + `'`,
		"bearer prefix":   "Bearer " + jwt,
		"stray character": jwt + ",",
		"line break":      jwt[:40] + "\n" + jwt[40:],
		"json":            `{"token":"` + jwt + `"}`,
		"two tokens":      jwt + " " + jwt,
		"env assignment":  "CHAINGUARD_IDENTITY_TOKEN=" + jwt,
		"only the claims": strings.Split(jwt, ".")[1],
		"opaque token":    "ghp_" + strings.Repeat("A1b2C3d4", 5),
	} {
		t.Run(name, func(t *testing.T) {
			f.cfg.IdentityToken = value
			_, _, err := f.helper(t).Get(f.host)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrBadAmbientToken)
			msg := err.Error()
			assertNoSecret(t, msg, jwt, "error")
			assertNoSecret(t, msg, value, "error")
			assert.Contains(t, msg, "CHAINGUARD_IDENTITY_TOKEN", "names the setting")
			assert.Contains(t, msg, "bytes", "describes the shape")
		})
	}

	// The same value in the config file is described the same way.
	xdg := t.TempDir()
	writeConfigFile(t, xdg, `{"identity_token": "Bearer `+jwt+`"}`, 0o600)
	cfg, err := LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg}))
	require.NoError(t, err)
	_, err = FindAmbientToken(context.Background(), cfg, http.DefaultClient)
	require.Error(t, err)
	assertNoSecret(t, err.Error(), jwt, "config file value")

	// A token file whose content is wrapped is described, not shown.
	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte("Bearer "+jwt+"\n"), 0o600))
	f.cfg.IdentityToken = path
	_, _, err = f.helper(t).Get(f.host)
	require.Error(t, err)
	assertNoSecret(t, err.Error(), jwt, "token file content")
	assert.Contains(t, err.Error(), path, "names the file")
}

// Surrounding white space is the one wrapping accepted, for both forms.
func TestIdentityTokenSurroundingWhiteSpaceIsAccepted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	jwt := f.ambient
	f.cfg.IdentityToken = " \t" + jwt + "\r\n"
	_, _, err := f.helper(t).Get(f.host)
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte("\n"+jwt+"\n\n"), 0o600))
	f.cfg.IdentityToken = "  " + path + "\n"
	_, _, err = f.helper(t).Get(f.host)
	require.NoError(t, err)
}

// URL user info is never echoed, also when the URL does not parse.
func TestURLUserInfoIsNeverEchoed(t *testing.T) {
	t.Parallel()
	const password = "hunter2-Sup3rSecretPassw0rd"
	for _, u := range []string{
		"https://user:" + password + "@example.com/%zz",
		"https://user:" + password + "@exa mple.com/",
		"::user:" + password + "@",
		"user:" + password + "@example.com",
	} {
		cfg := Config{ActionsURL: u, ActionsToken: "x", tokenPath: filepath.Join(t.TempDir(), "none")}
		_, err := FindAmbientToken(context.Background(), cfg, http.DefaultClient)
		require.Error(t, err)
		assert.False(t, strings.Contains(err.Error(), password), "ACTIONS_ID_TOKEN_REQUEST_URL user info leaked")
		assert.False(t, strings.Contains(err.Error(), "hunter2"), "ACTIONS_ID_TOKEN_REQUEST_URL user info leaked")
	}
}

// readsPromptly runs fn and fails the test, instead of hanging it, if fn
// blocks: the whole point is that nothing blocks.
func readsPromptly(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("blocked: a read waited on a FIFO or device")
		return nil
	}
}

func plantFIFO(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	// Let a blocked reader go at the end, so a failing test cannot leak a
	// goroutine stuck in open forever.
	t.Cleanup(func() {
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = w.Close()
		}
	})
}

// A FIFO, socket or device given as the token file, found at the projected
// token path, or found as the config file fails at once, naming the path.
func TestSpecialFilesFailAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	plantFIFO(t, fifo)
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	for name, path := range map[string]string{"fifo": fifo, "socket": sock, "device": os.DevNull, "folder": dir} {
		t.Run("token file "+name, func(t *testing.T) {
			cfg := Config{IdentityToken: path}
			err := readsPromptly(t, func() error {
				_, err := FindAmbientToken(context.Background(), cfg, http.DefaultClient)
				return err
			})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrBadAmbientToken)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), "not a regular file")
		})
		t.Run("projected path "+name, func(t *testing.T) {
			cfg := Config{tokenPath: path}
			err := readsPromptly(t, func() error {
				_, err := FindAmbientToken(context.Background(), cfg, http.DefaultClient)
				return err
			})
			require.Error(t, err)
			assert.Contains(t, err.Error(), path)
		})
	}

	t.Run("config file fifo", func(t *testing.T) {
		xdg := t.TempDir()
		path := filepath.Join(xdg, "docker-credential-cgr", "config.json")
		plantFIFO(t, path)
		err := readsPromptly(t, func() error {
			_, err := LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg}))
			return err
		})
		require.Error(t, err)
		assert.Contains(t, err.Error(), path)
		assert.Contains(t, err.Error(), "FIFO")
	})

	// The kubelet's projected tokens are symlinks into a ..data folder:
	// a link to a regular file is still read.
	t.Run("symlinked token file is read", func(t *testing.T) {
		f := newFixture(t)
		d := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(d, "..2026_11_25"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(d, "..2026_11_25", "token"), []byte(f.ambient), 0o644))
		require.NoError(t, os.Symlink("..2026_11_25", filepath.Join(d, "..data")))
		require.NoError(t, os.Symlink("..data/token", filepath.Join(d, "token")))
		f.cfg.IdentityToken = ""
		f.cfg.tokenPath = filepath.Join(d, "token")
		_, _, err := f.helper(t).Get(f.host)
		require.NoError(t, err)
	})
}

// Like ssh with its config: a helper config file that another user could
// have written is refused, naming the file and the fix. It names the STS
// the ambient token is sent to.
func TestConfigFileMustBeTrusted(t *testing.T) {
	t.Parallel()
	for _, perm := range []os.FileMode{0o666, 0o620, 0o602, 0o660} {
		xdg := t.TempDir()
		path := writeConfigFile(t, xdg, `{"issuer": "https://evil.example"}`, perm)
		_, err := LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg}))
		require.Error(t, err, "mode %04o", perm)
		assert.Contains(t, err.Error(), path)
		assert.Contains(t, err.Error(), "chmod go-w")
	}
	// Readable by others is fine: the config holds no secret of its own.
	xdg := t.TempDir()
	writeConfigFile(t, xdg, `{"identity": "x"}`, 0o644)
	cfg, err := LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg}))
	require.NoError(t, err)
	assert.Equal(t, "x", cfg.Identity)

	if os.Geteuid() != 0 {
		t.Log("not root: the foreign-owner case runs in the e2e abuse suite")
		return
	}
	xdg = t.TempDir()
	path := writeConfigFile(t, xdg, `{"issuer": "https://evil.example"}`, 0o644)
	require.NoError(t, os.Chown(path, 65534, 65534))
	_, err = LoadConfig(envFrom(map[string]string{"XDG_CONFIG_HOME": xdg}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "belongs to user id 65534")
}

// A cache hit inside a GitHub Actions job makes no network call: the job's
// request token keys the cache, so the Actions endpoint is asked only when
// an exchange is needed.
func TestActionsCacheHitMakesNoNetworkCall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls atomic.Int32
	target, err := url.Parse(f.sb.Issuer.URL())
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(counting.Close)
	actionsURL := counting.URL + strings.TrimPrefix(f.sb.Issuer.ActionsRequestURL(), f.sb.Issuer.URL())

	f.cfg.IdentityToken = ""
	f.sb.STS.AddIdentity("gha-identity", sandbox.Identity{
		Issuer:         f.sb.Issuer.URL(),
		SubjectPattern: `repo:octo-org/octo-repo:ref:refs/heads/main`,
	})
	f.cfg.Identity = "gha-identity"
	f.cfg.ActionsURL = actionsURL
	f.cfg.ActionsToken = f.sb.Issuer.ActionsRequestToken()
	_, first, err := f.helper(t).Get(f.host)
	require.NoError(t, err)
	assert.Equal(t, int32(1), calls.Load())
	for range 5 {
		_, again, err := f.helper(t).Get(f.host)
		require.NoError(t, err)
		assert.True(t, again == first, "served from the cache")
	}
	assert.Equal(t, int32(1), calls.Load(), "cache hits asked the Actions endpoint")
	assert.Equal(t, 1, f.sb.STS.Exchanges())

	// Another job (another request token) never sees this job's entry.
	f.cfg.ActionsToken = "another-job-request-token"
	_, _, err = f.helper(t).Get(f.host)
	require.Error(t, err, "the sandbox refuses an unknown request token")
	assert.Equal(t, int32(2), calls.Load(), "a different job keys a different entry")
}
