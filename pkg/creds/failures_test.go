package creds

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

func TestARefusedGetIsRecordedWithTheServersWords(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.Identity = "720909c9f5279097d847ad02a2f24ba8f59de36a/0000000000000bad"
	_, _, err := f.helper(t).Get("https://" + f.host + "/v2/")
	require.ErrorIs(t, err, ErrIdentityRejected)

	path, got, err := RecentFailures(f.cfg, 5)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, filepath.Join(f.cfg.CacheDir, failureLog), path)
	rec := got[0]
	assert.Equal(t, "get", rec.Command)
	assert.Equal(t, f.host, rec.Registry)
	assert.Equal(t, "ErrIdentityRejected", rec.Class)
	assert.Contains(t, rec.Message, `720909c9f5279097d847ad02a2f24ba8f59de36a/0000000000000bad not found`, "the STS's own words")
	assert.WithinDuration(t, time.Now(), rec.Time, time.Minute)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm())
	assertNoTokenInFiles(t, f.cfg.CacheDir, f.ambient)
}

func TestAKubeletFailureIsRecorded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	expired, err := f.sb.Issuer.MintServiceAccountToken("ns", "pod", sandbox.WithLifetime(-time.Minute))
	require.NoError(t, err)
	_, ok, err := f.helper(t).PullCredential(context.Background(), Pull{Registry: f.host, ServiceAccountToken: expired})
	require.ErrorIs(t, err, ErrTokenExpired)
	assert.False(t, ok)

	_, got, err := RecentFailures(f.cfg, 5)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "kubelet", got[0].Command)
	assert.Equal(t, "ErrTokenExpired", got[0].Class)
	assertNoTokenInFiles(t, f.cfg.CacheDir, f.ambient, expired)
}

func TestNothingIsRecordedForAGoodGetOrAnotherRegistry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := f.helper(t)
	_, _, err := h.Get(f.host)
	require.NoError(t, err)
	_, _, err = h.Get("registry.example")
	require.Error(t, err) // not ours: docker's "not found"
	path, got, err := RecentFailures(f.cfg, 5)
	require.NoError(t, err)
	assert.Empty(t, got)
	_, err = os.Lstat(path)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestWithTheCacheOffThereIsNoRecord(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.NoCache = true
	f.cfg.Identity = "missing"
	_, _, err := f.helper(t).Get(f.host)
	require.Error(t, err)
	path, got, err := RecentFailures(f.cfg, 5)
	require.NoError(t, err)
	assert.Empty(t, path)
	assert.Empty(t, got)
	_, err = os.Lstat(f.cfg.CacheDir)
	assert.ErrorIs(t, err, fs.ErrNotExist, "the cache folder was made")
}

func TestTheRecordIsBoundedAndKeepsTheNewest(t *testing.T) {
	t.Parallel()
	dir := privateDir(t)
	c, err := openCache(dir, t.Logf)
	require.NoError(t, err)
	defer func() { _ = c.close() }()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 400 // about 60 KiB of lines: more than one rotation's worth
	for i := range n {
		err := c.appendFailure(failureFor("get", "cgr.dev", fmt.Errorf("%w: failure %d %s", ErrSTSFailed, i, strings.Repeat("x", 100)), start.Add(time.Duration(i)*time.Second)))
		require.NoError(t, err)
	}
	var total int64
	for _, name := range []string{failureLog, failureLogOld} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err, "%s after rotation", name)
		assert.LessOrEqual(t, fi.Size(), int64(maxFailureLog))
		total += fi.Size()
	}
	assert.LessOrEqual(t, total, int64(2*maxFailureLog))

	got, err := c.recentFailures(3)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for i, rec := range got {
		assert.Contains(t, rec.Message, fmt.Sprintf("failure %d ", n-3+i), "oldest first, the newest last")
		assert.Equal(t, "ErrSTSFailed", rec.Class)
	}
}

func TestTheRecordRefusesAPlantedLinkAndSkipsCorruptLines(t *testing.T) {
	t.Parallel()
	dir := privateDir(t)
	target := filepath.Join(t.TempDir(), "target")
	require.NoError(t, os.WriteFile(target, []byte("keep\n"), 0o600))
	require.NoError(t, os.Symlink(target, filepath.Join(dir, failureLog)))
	c, err := openCache(dir, t.Logf)
	require.NoError(t, err)
	defer func() { _ = c.close() }()
	err = c.appendFailure(failureFor("get", "cgr.dev", ErrSTSFailed, time.Now()))
	require.Error(t, err, "a link at failures.log must not be written through")
	b, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "keep\n", string(b))

	// Nor a link to another file of the folder, such as a cache entry.
	require.NoError(t, os.Remove(filepath.Join(dir, failureLog)))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "k.json"), []byte("{}"), 0o600))
	require.NoError(t, os.Symlink("k.json", filepath.Join(dir, failureLog)))
	require.Error(t, c.appendFailure(failureFor("get", "cgr.dev", ErrSTSFailed, time.Now())))
	b, err = os.ReadFile(filepath.Join(dir, "k.json"))
	require.NoError(t, err)
	assert.Equal(t, "{}", string(b))

	require.NoError(t, os.Remove(filepath.Join(dir, failureLog)))
	require.NoError(t, os.WriteFile(filepath.Join(dir, failureLog), []byte("not json\n{\"message\":\"\"}\n"), 0o600))
	require.NoError(t, c.appendFailure(failureFor("get", "cgr.dev", ErrSTSFailed, time.Now())))
	got, err := c.recentFailures(10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, ErrSTSFailed.Error(), got[0].Message)
}

func TestARecordedMessageIsOneScrubbedCappedLine(t *testing.T) {
	t.Parallel()
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	err := fmt.Errorf("%w: line one\nline two %s %s", ErrBadAmbientToken, jwt, strings.Repeat("é", 2*maxFailureMessage))
	rec := failureFor("kubelet", "cgr.dev", err, time.Now())
	assert.NotContains(t, rec.Message, "\n")
	assert.NotContains(t, rec.Message, "eyJ")
	assert.Contains(t, rec.Message, "line one line two "+logsafe.Redacted)
	assert.Equal(t, maxFailureMessage+1, len([]rune(rec.Message)))
	assert.Equal(t, "ErrBadAmbientToken", rec.Class)
	assert.Equal(t, "unclassified", failureFor("get", "x", errors.New("other"), time.Now()).Class)
}

// privateDir is a folder of ours that only we can read, which the cache
// uses as it is (t.TempDir's is 0755, which gets a private subfolder).
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o700))
	return dir
}

// assertNoTokenInFiles fails if any file the helper wrote outside its cache
// entries (which hold the issued token by design) holds a token or a part
// of one.
func assertNoTokenInFiles(t *testing.T, dir string, tokens ...string) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	require.NoError(t, err)
	defer func() { _ = root.Close() }()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, entrySuffix) {
			return err
		}
		b, err := root.ReadFile(p)
		if err != nil {
			return err
		}
		assert.NotContains(t, string(b), "eyJ", "%s holds something token-like", p)
		for _, tok := range tokens {
			for part := range strings.SplitSeq(tok, ".") {
				assert.NotContains(t, string(b), part, "%s holds part of a token", p)
			}
		}
		return nil
	})
	require.NoError(t, err)
}

// TestAnAnnotatedIdentityThatMayBeASecretIsNotShown: an opaque token
// pasted into the service account's identity annotation passes the
// identity check (its characters are allowed) and fails at the STS; the
// error names where the identity came from without showing it.
func TestAnAnnotatedIdentityThatMayBeASecretIsNotShown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pod, err := f.sb.Issuer.MintServiceAccountToken("ns", "pod")
	require.NoError(t, err)
	const opaque = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	_, _, err = f.helper(t).PullCredential(context.Background(), Pull{Registry: f.host, ServiceAccountToken: pod, Identity: opaque, IdentitySource: "the annotation"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "from the annotation")
	assert.NotContains(t, err.Error(), "ghp_0123")
}
