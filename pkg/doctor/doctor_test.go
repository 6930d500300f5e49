package doctor

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// world is a machine set up as the README says, against the sandbox: this
// (test) binary on PATH as docker-credential-cgr, docker's config sending
// the sandbox registry to it, a projected-style token file, an identity.
type world struct {
	sb      *sandbox.Sandbox
	env     map[string]string
	ambient string // the ambient token in the token file
	dir     string
	bin     string // the PATH folder
	docker  string // DOCKER_CONFIG
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sb, err := sandbox.Start()
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	w := &world{sb: sb, dir: t.TempDir()}
	w.bin = filepath.Join(w.dir, "bin")
	w.docker = filepath.Join(w.dir, "docker")
	require.NoError(t, os.Mkdir(w.bin, 0o755))
	require.NoError(t, os.Mkdir(w.docker, 0o700))
	self, err := os.Executable()
	require.NoError(t, err)
	require.NoError(t, os.Symlink(self, filepath.Join(w.bin, binaryName)))
	w.writeDockerConfig(t, `{"credHelpers": {"`+sb.Registry.Host()+`": "cgr"}}`)
	w.setToken(t)
	w.env = map[string]string{
		"PATH":                      w.bin,
		"HOME":                      filepath.Join(w.dir, "home"),
		"DOCKER_CONFIG":             w.docker,
		"CHAINGUARD_ISSUER":         sb.STS.URL(),
		"CHAINGUARD_REGISTRY":       sb.Registry.Host(),
		"CHAINGUARD_IDENTITY":       sandbox.DefaultIdentity,
		"CHAINGUARD_IDENTITY_TOKEN": filepath.Join(w.dir, "oidc-token"),
		"CHAINGUARD_CACHE_DIR":      filepath.Join(w.dir, "cache"),
	}
	return w
}

// setToken writes a fresh ambient token for default/puller to the token file.
func (w *world) setToken(t *testing.T, opts ...sandbox.TokenOption) {
	t.Helper()
	tok, err := w.sb.Issuer.MintServiceAccountToken("default", "puller", opts...)
	require.NoError(t, err)
	w.ambient = tok
	require.NoError(t, os.WriteFile(filepath.Join(w.dir, "oidc-token"), []byte(tok+"\n"), 0o600))
}

func (w *world) writeDockerConfig(t *testing.T, doc string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(w.docker, "config.json"), []byte(doc), 0o600))
}

type outcome struct {
	code           int
	stdout, stderr string
}

// line is the first line of the named check, or "".
func (o outcome) line(name string) string {
	for l := range strings.SplitSeq(o.stdout, "\n") {
		if len(l) > 4 && strings.HasPrefix(l[strings.IndexByte(l, ' ')+1:], name+": ") {
			return l
		}
	}
	return ""
}

// block is the named check's line with its fix and details.
func (o outcome) block(name string) string {
	lines := strings.Split(o.stdout, "\n")
	for i, l := range lines {
		if l == o.line(name) && l != "" {
			end := i + 1
			for end < len(lines) && strings.HasPrefix(lines[end], "    ") {
				end++
			}
			return strings.Join(lines[i:end], "\n")
		}
	}
	return ""
}

func (w *world) run(t *testing.T, args ...string) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(args, func(k string) string { return w.env[k] }, &stdout, &stderr)
	o := outcome{code, stdout.String(), stderr.String()}
	t.Logf("doctor %s: exit %d\n%s%s", strings.Join(args, " "), code, o.stdout, o.stderr)
	// No token, ambient or issued, in any output: every JWT starts "eyJ".
	for _, out := range []string{o.stdout, o.stderr} {
		if w.ambient != "" {
			assert.NotContains(t, out, w.ambient)
		}
		assert.NotContains(t, out, "eyJ", "no JWT in the output")
	}
	// Every ✘ comes with its fix on the next line.
	lines := strings.Split(o.stdout, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "✘ ") {
			require.Less(t, i+1, len(lines))
			assert.True(t, strings.HasPrefix(lines[i+1], "    fix: "), "the fix follows %q", l)
		}
	}
	return o
}

func TestHealthySetup(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	o := w.run(t)
	assert.Equal(t, 0, o.code)
	for _, name := range []string{"config", "path", "docker-config", "ambient-token", "token-claims", "identity", "cache", "failures", "exchange"} {
		assert.True(t, strings.HasPrefix(o.line(name), "✔ "), "%s passes", name)
	}
	assert.True(t, strings.HasPrefix(o.line("registry"), "- registry: not asked"))
	assert.Contains(t, o.line("path"), "is this binary")
	assert.Contains(t, o.block("ambient-token"), "CHAINGUARD_IDENTITY_TOKEN: here, used")
	assert.Contains(t, o.block("token-claims"), `sub: "system:serviceaccount:default:puller"`)
	assert.Contains(t, o.block("token-claims"), `iss: "`+w.sb.Issuer.URL()+`"`)
	assert.Contains(t, o.block("identity"), "chainctl iam identities create NAME --identity-issuer='"+w.sb.Issuer.URL()+"' --subject-pattern='system:serviceaccount:default:puller' --role=registry.pull")
	assert.Contains(t, o.block("identity"), `--issuer-keys="$(kubectl get --raw /openid/v1/jwks)"`)
	assert.Contains(t, o.block("identity"), "rotates its signing keys")
	assert.Contains(t, o.block("exchange"), `identity (sub): "`+sandbox.DefaultIdentity+`"`)
	assert.Contains(t, o.block("exchange"), `aud: "cgr.dev"`)
	assert.Equal(t, 1, w.sb.STS.Exchanges(), "one real exchange")
	assert.True(t, strings.HasSuffix(o.stdout, "doctor: every check passed\n"))

	o = w.run(t, "--registry-check")
	assert.Equal(t, 0, o.code)
	assert.True(t, strings.HasPrefix(o.line("registry"), "✔ "))
	assert.Contains(t, o.block("registry"), w.sb.Registry.Host()+": GET /v2/ with the token answered 200 (bearer auth)")
	assert.Positive(t, w.sb.Registry.TokenRequests(), "the registry's realm was asked")
}

func TestOfflineMakesNoNetworkCall(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	o := w.run(t, "--offline")
	assert.Equal(t, 0, o.code)
	assert.Equal(t, "- exchange: not tried (--offline)", o.line("exchange"))
	assert.Contains(t, o.line("identity"), "not with --offline")
	assert.Zero(t, w.sb.STS.Requests())
}

func TestAmbientTokenProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(*testing.T, *world)
		check string
		has   []string
	}{
		{"wrong audience", func(t *testing.T, w *world) {
			w.setToken(t, sandbox.WithAudience("https://kubernetes.default.svc"))
		}, "token-claims", []string{"wrong audience", `aud: "https://kubernetes.default.svc"`, "fix: request or project the token with audience issuer.enforce.dev"}},
		{"expired", func(t *testing.T, w *world) {
			w.setToken(t, sandbox.WithIssuedAt(time.Now().Add(-2*time.Hour)))
		}, "token-claims", []string{"has expired", "exp: expired 1h0m", "fix: check that the token path"}},
		{"not a token", func(t *testing.T, w *world) {
			require.NoError(t, os.WriteFile(w.env["CHAINGUARD_IDENTITY_TOKEN"], []byte("not a token\n"), 0o600))
		}, "ambient-token", []string{"is not a JWT", "fix: point CHAINGUARD_IDENTITY_TOKEN"}},
		{"no token anywhere", func(t *testing.T, w *world) {
			if _, err := os.Stat(creds.DefaultTokenPath); err == nil {
				t.Skip("this machine has a projected token at", creds.DefaultTokenPath)
			}
			delete(w.env, "CHAINGUARD_IDENTITY_TOKEN")
		}, "ambient-token", []string{"no ambient OIDC token found", "1. CHAINGUARD_IDENTITY_TOKEN: not here (unset)", "2. \"" + creds.DefaultTokenPath + "\": not here (no such file)", "3. GitHub Actions OIDC: not here", "fix: set CHAINGUARD_IDENTITY_TOKEN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			tc.setup(t, w)
			o := w.run(t)
			assert.Equal(t, 1, o.code)
			assert.True(t, strings.HasPrefix(o.line(tc.check), "✘ "), "%s fails", tc.check)
			for _, s := range tc.has {
				assert.Contains(t, o.block(tc.check), s)
			}
			assert.Equal(t, "- exchange: no usable ambient token (see above)", o.line("exchange"))
			assert.Zero(t, w.sb.STS.Requests(), "no exchange with a token that cannot work")
		})
	}
}

func TestSTSRefuses(t *testing.T) {
	t.Parallel()
	t.Run("unknown identity", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.env["CHAINGUARD_IDENTITY"] = "no-such-identity"
		o := w.run(t)
		assert.Equal(t, 1, o.code)
		assert.True(t, strings.HasPrefix(o.line("identity"), "✔ identity: CHAINGUARD_IDENTITY is \"no-such-identity\""))
		assert.True(t, strings.HasPrefix(o.line("exchange"), "✘ exchange: the STS rejected the exchange"))
		assert.Contains(t, o.line("exchange"), "404 Not Found")
		assert.Contains(t, o.block("exchange"), "fix: set CHAINGUARD_IDENTITY to the id of an existing identity")
	})
	t.Run("no identity matches", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: "the identity does not trust this token's subject"})
		o := w.run(t)
		assert.Equal(t, 1, o.code)
		assert.Contains(t, o.line("exchange"), "the identity does not trust this token's subject")
		assert.Contains(t, o.block("exchange"), "fix: create an identity that trusts this token with the command the identity check prints")
	})
	t.Run("no identity set", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		delete(w.env, "CHAINGUARD_IDENTITY")
		o := w.run(t, "--offline")
		assert.Equal(t, 0, o.code, "a warning is not a failure")
		assert.True(t, strings.HasPrefix(o.line("identity"), "! identity: no identity is set"))
		assert.Contains(t, o.block("identity"), "fix: create an identity that trusts this token")
		assert.Contains(t, o.stdout, "doctor: no check failed, 1 warning\n")
	})
}

func TestDockerConfig(t *testing.T) {
	t.Parallel()
	t.Run("credsStore shadows a missing entry", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.writeDockerConfig(t, `{"credsStore": "desktop", "auths": {}}`)
		o := w.run(t, "--offline")
		assert.Equal(t, 1, o.code)
		assert.Contains(t, o.line("docker-config"), "does not send "+w.sb.Registry.Host()+" to docker-credential-cgr")
		assert.Contains(t, o.line("docker-config"), `docker asks its credsStore, "desktop", for them instead`)
		assert.NotContains(t, o.block("docker-config"), "the credHelpers entries win", "configure-docker's note is about the entries it would add")
		assert.Contains(t, o.block("docker-config"), "fix: docker-credential-cgr configure-docker")
	})
	t.Run("stale auths entry", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.writeDockerConfig(t, `{"auths": {"https://`+w.sb.Registry.Host()+`": {"auth": "c2VjcmV0"}}, "credHelpers": {"`+w.sb.Registry.Host()+`": "cgr"}}`)
		o := w.run(t, "--offline")
		assert.Equal(t, 0, o.code)
		assert.True(t, strings.HasPrefix(o.line("docker-config"), "! docker-config: "))
		assert.Contains(t, o.line("docker-config"), "auths also has credentials for")
		assert.NotContains(t, o.stdout, "c2VjcmV0", "never the stored credentials")
	})
	t.Run("another helper", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.writeDockerConfig(t, `{"credHelpers": {"`+w.sb.Registry.Host()+`": "gcloud"}}`)
		o := w.run(t, "--offline")
		assert.Equal(t, 1, o.code)
		assert.Contains(t, o.line("docker-config"), "docker-credential-gcloud")
		assert.Contains(t, o.block("docker-config"), "fix: docker-credential-cgr configure-docker --force")
	})
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		require.NoError(t, os.Remove(filepath.Join(w.docker, "config.json")))
		o := w.run(t, "--offline")
		assert.Equal(t, 1, o.code)
		assert.Contains(t, o.line("docker-config"), "there is no docker config at")
		assert.Contains(t, o.block("docker-config"), "fix: docker-credential-cgr configure-docker")
		_, err := os.Stat(filepath.Join(w.docker, "config.json"))
		assert.ErrorIs(t, err, os.ErrNotExist, "doctor writes nothing")
	})
	t.Run("malformed", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.writeDockerConfig(t, `{"credHelpers": `)
		o := w.run(t, "--offline")
		assert.Equal(t, 1, o.code)
		assert.True(t, strings.HasPrefix(o.line("docker-config"), "✘ "))
	})
	t.Run("DOCKER_CONFIG is a file", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.env["DOCKER_CONFIG"] = filepath.Join(w.docker, "config.json")
		o := w.run(t, "--offline")
		assert.Equal(t, 1, o.code)
		assert.Contains(t, o.line("docker-config"), "which is not a folder")
	})
}

func TestPath(t *testing.T) {
	t.Parallel()
	t.Run("chainctl's link first", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		first := filepath.Join(w.dir, "chainctl-bin")
		require.NoError(t, os.Mkdir(first, 0o755))
		chainctl := filepath.Join(first, "chainctl")
		require.NoError(t, os.WriteFile(chainctl, []byte("#!/bin/sh\n"), 0o755))
		require.NoError(t, os.Symlink(chainctl, filepath.Join(first, binaryName)))
		w.env["PATH"] = first + string(os.PathListSeparator) + w.bin
		o := w.run(t, "--offline")
		assert.Equal(t, 1, o.code)
		assert.Contains(t, o.line("path"), "is chainctl's link (to "+quote(chainctl)+"), not this binary")
		assert.Contains(t, o.line("path"), "docker runs chainctl")
		assert.Contains(t, o.block("path"), "coexisting with chainctl")
		assert.Contains(t, o.block("path"), "also on PATH, later, so docker never runs it: "+quote(filepath.Join(w.bin, binaryName)))
	})
	t.Run("another program", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		require.NoError(t, os.Remove(filepath.Join(w.bin, binaryName)))
		require.NoError(t, os.WriteFile(filepath.Join(w.bin, binaryName), []byte("#!/bin/sh\n"), 0o755))
		o := w.run(t, "--offline")
		assert.Equal(t, 1, o.code)
		assert.Contains(t, o.line("path"), "is not this binary")
	})
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.env["PATH"] = filepath.Join(w.dir, "empty")
		o := w.run(t, "--offline")
		assert.Equal(t, 1, o.code)
		assert.Contains(t, o.line("path"), "no docker-credential-cgr on PATH")
	})
}

func TestCache(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	o := w.run(t, "--offline")
	assert.Contains(t, o.line("cache"), "is not made yet")

	// A get fills the cache; doctor counts the entry and never shows it.
	cfg, err := creds.LoadConfig(func(k string) string { return w.env[k] })
	require.NoError(t, err)
	h, err := creds.New(cfg)
	require.NoError(t, err)
	_, issued, err := h.Get(w.sb.Registry.Host())
	require.NoError(t, err)
	o = w.run(t, "--offline")
	assert.NotContains(t, o.stdout, issued)
	assert.Regexp(t, `^✔ cache: ".*cache": 1 cached token, 1 valid, the latest valid for .* more`, o.line("cache"))
	assert.Contains(t, o.block("cache"), "mode 0700, owned by user id")

	w.env["CHAINGUARD_NO_CACHE"] = "true"
	o = w.run(t, "--offline")
	assert.Contains(t, o.line("cache"), "✔ cache: off: CHAINGUARD_NO_CACHE")

	// A shared folder holds the entries in a private subfolder.
	shared := filepath.Join(w.dir, "shared")
	require.NoError(t, os.Mkdir(shared, 0o755))
	require.NoError(t, os.Chmod(shared, 0o755))
	delete(w.env, "CHAINGUARD_NO_CACHE")
	w.env["CHAINGUARD_CACHE_DIR"] = shared
	o = w.run(t, "--offline")
	private := filepath.Join(shared, "docker-credential-cgr-"+strconv.Itoa(os.Geteuid()))
	assert.Equal(t, "✔ cache: "+quote(private)+" is not made yet; the first get makes it (mode 0700)", o.line("cache"), "the private subfolder")
	_, err = os.Stat(private)
	assert.ErrorIs(t, err, os.ErrNotExist, "doctor makes nothing")
}

func TestGitHubActionsToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	delete(w.env, "CHAINGUARD_IDENTITY_TOKEN")
	if _, err := os.Stat(creds.DefaultTokenPath); err == nil {
		t.Skip("this machine has a projected token at", creds.DefaultTokenPath)
	}
	w.env["ACTIONS_ID_TOKEN_REQUEST_URL"] = w.sb.Issuer.ActionsRequestURL()
	w.env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = w.sb.Issuer.ActionsRequestToken()
	o := w.run(t)
	assert.NotContains(t, o.stdout, w.sb.Issuer.ActionsRequestToken())
	assert.Contains(t, o.block("ambient-token"), "3. GitHub Actions OIDC: here, used")
	id := o.block("identity")
	assert.Contains(t, id, "--subject-pattern='repo:octo-org/octo-repo:ref:refs/heads/main'")
	assert.Contains(t, id, "repo:OWNER-<owner id>/REPO-<repository id>:")
	assert.NotContains(t, id, "--issuer-keys", "GitHub's issuer is public")

	o = w.run(t, "--offline")
	assert.True(t, strings.HasPrefix(o.line("ambient-token"), "! ambient-token: GitHub Actions OIDC is available, but --offline"))
	assert.Equal(t, "- token-claims: no ambient token to read", o.line("token-claims"))
}

func TestJSON(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.env["CHAINGUARD_IDENTITY"] = "no-such-identity"
	o := w.run(t, "--json")
	assert.Equal(t, 1, o.code)
	var rep struct {
		OK       *bool `json:"ok"`
		Failed   *int  `json:"failed"`
		Warnings *int  `json:"warnings"`
		Checks   []map[string]any
	}
	require.NoError(t, json.Unmarshal([]byte(o.stdout), &rep))
	require.NotNil(t, rep.OK)
	require.NotNil(t, rep.Failed)
	require.NotNil(t, rep.Warnings)
	assert.False(t, *rep.OK)
	assert.Equal(t, 1, *rep.Failed)
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c["name"].(string))
		assert.Contains(t, []any{"ok", "warn", "fail", "skip"}, c["status"])
		assert.NotEmpty(t, c["summary"])
		for k := range c {
			assert.Contains(t, []string{"name", "status", "summary", "fix", "details"}, k)
		}
		if c["status"] == "fail" {
			assert.NotEmpty(t, c["fix"], "a failure has its fix")
		}
	}
	assert.Equal(t, []string{"config", "path", "docker-config", "ambient-token", "token-claims", "identity", "cache", "failures", "exchange", "registry"}, names)
	assert.Equal(t, "fail", rep.Checks[8]["status"])
}

func TestUsage(t *testing.T) {
	t.Parallel()
	w := &world{env: map[string]string{}}
	o := w.run(t, "--help")
	assert.Equal(t, 0, o.code)
	assert.Contains(t, o.stdout, "usage: docker-credential-cgr doctor")
	assert.Regexp(t, "(?m)^  -registry-check( |$)", o.stdout, "the flag's own line, not the usage line's mention")
	assert.Empty(t, o.stderr)
	assert.Equal(t, 0, w.run(t, "-h").code)
	for _, args := range [][]string{{"--nope"}, {"extra"}, {"--offline", "--registry-check"}} {
		o := w.run(t, args...)
		assert.Equal(t, 2, o.code, "%v", args)
		assert.Empty(t, o.stdout)
		assert.True(t, strings.HasPrefix(o.stderr, "doctor: "))
	}
}

func TestPlain(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "get", plain("get", 10))
	assert.Equal(t, `"a\nE0101 forged"`, plain("a\nE0101 forged", 100))
	assert.Equal(t, `"\u202eevil"`, plain("\u202eevil", 100), "a bidi override is quoted")
	assert.Equal(t, `"abc"… (6 bytes)`, plain("abcdef", 3))
	assert.Equal(t, `""`, plain("", 3))
}

func TestConfigError(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.env["CHAINGUARD_NO_CACHE"] = "yes"
	o := w.run(t, "--offline")
	assert.Equal(t, 1, o.code)
	assert.Contains(t, o.line("config"), `CHAINGUARD_NO_CACHE="yes" is not a boolean`)
	assert.Equal(t, "- docker-config: "+needsCfg, o.line("docker-config"))
}

// TestReferenceListsEveryFlag: docs/reference.md's doctor section names
// every flag --help lists, and every check.
func TestReferenceListsEveryFlag(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/reference.md")
	require.NoError(t, err)
	_, sec, ok := strings.Cut(string(b), "\n### doctor\n")
	require.True(t, ok, "docs/reference.md has a doctor section")
	sec, _, _ = strings.Cut(sec, "\n## ")
	var out, errb bytes.Buffer
	require.Equal(t, 0, Run([]string{"--help"}, func(string) string { return "" }, &out, &errb))
	flags := regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`).FindAllStringSubmatch(out.String(), -1)
	require.Len(t, flags, 3)
	for _, m := range flags {
		assert.Contains(t, sec, "`--"+m[1]+"`")
	}
	for _, c := range checks {
		assert.Contains(t, sec, "`"+c.name+"`")
	}
}

func TestRegistryCheckFails(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.sb.Registry.Close()
	o := w.run(t, "--registry-check")
	assert.Equal(t, 1, o.code)
	assert.True(t, strings.HasPrefix(o.line("exchange"), "✔ "), "the exchange does not need the registry")
	assert.Equal(t, "✘ registry: 1 of 1 served registries refused the token or could not be reached", o.line("registry"))
	assert.Contains(t, o.block("registry"), w.sb.Registry.Host()+": cannot reach")
}

// A refused get is recorded; doctor --offline then shows the server's
// words, which docker threw away. doctor's own exchange records nothing,
// and doctor makes no cache folder.
func TestFailureRecord(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	const words = "the identity does not trust this token's subject (failure record test)"
	w.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: words})
	o := w.run(t)
	assert.Contains(t, o.line("exchange"), words)
	o = w.run(t, "--offline")
	assert.Equal(t, "✔ failures: none recorded (the cache folder, where the record is kept, is not made yet)", o.line("failures"))
	assert.NoDirExists(t, w.env["CHAINGUARD_CACHE_DIR"])

	cfg, err := creds.LoadConfig(func(k string) string { return w.env[k] })
	require.NoError(t, err)
	h, err := creds.New(cfg)
	require.NoError(t, err)
	w.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: words})
	_, _, err = h.Get(w.sb.Registry.Host())
	require.ErrorIs(t, err, creds.ErrIdentityRejected)

	o = w.run(t, "--offline")
	assert.Equal(t, 0, o.code, "a past failure is a warning")
	assert.Regexp(t, `^! failures: the last recorded failure was \d+s ago: get for "`+regexp.QuoteMeta(w.sb.Registry.Host())+`", ErrIdentityRejected$`, o.line("failures"))
	block := o.block("failures")
	assert.Contains(t, block, "fix: the message says what was wrong")
	assert.Contains(t, block, "failures.log")
	assert.Regexp(t, `(?m)^    \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ get `+regexp.QuoteMeta(w.sb.Registry.Host())+` ErrIdentityRejected: the STS rejected the exchange: `, block)
	assert.Contains(t, block, words)
	assert.Equal(t, 1, strings.Count(block, "ErrIdentityRejected: "), "one failure recorded: doctor's own was not")

	w.env["CHAINGUARD_NO_CACHE"] = "true"
	o = w.run(t, "--offline")
	assert.Equal(t, "- failures: no record: it is kept in the cache folder, and the cache is off", o.line("failures"))
}
