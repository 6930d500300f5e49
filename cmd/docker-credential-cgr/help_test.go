package main

import (
	"bytes"
	"errors"
	"go/ast"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runPlain runs the binary with only env (no sandbox: help makes no
// network call and reads no token) and stdin, under a deadline so that a
// command waiting on stdin fails the test instead of hanging it.
func runPlain(t *testing.T, env []string, stdin io.Reader, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%v did not finish within 30s: it waits on stdin? (%v)", args, <-done)
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return r
}

// plainEnv is a user with a home folder and nothing configured.
func plainEnv(t *testing.T) []string {
	t.Helper()
	return []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
}

// brokenEnv is a user whose configuration cannot work: a config file with
// an unknown key and an issuer the helper refuses. Help must still work.
func brokenEnv(t *testing.T) []string {
	t.Helper()
	xdg := t.TempDir()
	dir := filepath.Join(xdg, "docker-credential-cgr")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"idenity": "x"}`), 0o600))
	return append(plainEnv(t), "XDG_CONFIG_HOME="+xdg, "CHAINGUARD_ISSUER=http://sts.example.com")
}

// dispatchedCommands are the string cases of main.go's switches: what the
// binary answers itself.
func dispatchedCommands(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, f := range parseDir(t, ".") {
		ast.Inspect(f, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if s, ok := stringLit(e); ok {
						names[s] = true
					}
				}
			}
			return true
		})
	}
	require.True(t, names["configure-docker"], "the scan finds main.go's commands")
	return names
}

func helpCommands() []string {
	var names []string
	for _, g := range commandGroups {
		for _, c := range g.commands {
			names = append(names, c.name)
		}
	}
	return names
}

func TestHelpListsEveryCommandAndSetting(t *testing.T) {
	t.Parallel()
	for _, env := range [][]string{plainEnv(t), brokenEnv(t)} {
		var first string
		for _, arg := range []string{"--help", "-h", "help"} {
			r := runPlain(t, env, strings.NewReader(""), arg)
			require.Equal(t, 0, r.code, "%s: %s%s", arg, r.stdout, r.stderr)
			assert.Empty(t, r.stderr, arg)
			out := r.stdout
			assert.True(t, strings.HasPrefix(out, "Usage: docker-credential-cgr <command> [flags]\n"), out)
			for _, name := range helpCommands() {
				assert.Contains(t, out, "\n  "+name+" ", "%s lists the command %s", arg, name)
			}
			// Every CHAINGUARD_ variable the helper reads, one line each.
			for name := range envNames(t, repoRoot+"/pkg/creds") {
				if strings.HasPrefix(name, "CHAINGUARD_") {
					assert.Contains(t, out, "\n  "+name+" ", "%s lists %s", arg, name)
				}
			}
			assert.Contains(t, out, "\n  DOCKER_CONFIG ")
			// The config file's keys, as one list (wrapped over lines).
			keys := strings.Join(configKeys(t), ", ")
			assert.Contains(t, strings.Join(strings.Fields(out), " "), "keys: "+keys+" (an unknown key is an error)")
			assert.Contains(t, out, "docs/reference.md")
			assert.Contains(t, out, "echo cgr.dev | docker-credential-cgr get\n")
			if first == "" {
				first = out
			}
			assert.Equal(t, first, out, "%s is --help", arg)
		}
	}
	// The config file shown is this user's.
	env := plainEnv(t)
	r := runPlain(t, append(env, "XDG_CONFIG_HOME=/somewhere/xdg"), nil, "help")
	assert.Contains(t, r.stdout, "Config file: /somewhere/xdg/docker-credential-cgr/config.json\n")
}

// Every command main.go answers and every protocol action is in the help,
// and the help names no command the binary does not know (doctor aside,
// until it is wired in).
func TestHelpMatchesTheCommands(t *testing.T) {
	t.Parallel()
	dispatched := dispatchedCommands(t)
	for _, a := range []string{credentials.ActionGet, credentials.ActionStore, credentials.ActionErase, credentials.ActionList, credentials.ActionVersion} {
		dispatched[a] = true
		assert.Contains(t, actionHelp, a, "the action %s has a --help", a)
	}
	for name := range dispatched {
		if !strings.HasPrefix(name, "-") {
			assert.True(t, isCommand(name), "the help lists %s", name)
		}
	}
	for _, name := range helpCommands() {
		assert.True(t, dispatched[name], "the help lists %s, which the binary does not answer", name)
	}
}

func TestSubcommandHelp(t *testing.T) {
	t.Parallel()
	for _, name := range helpCommands() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, env := range [][]string{plainEnv(t), brokenEnv(t)} {
				var outs []string
				for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
					// A terminal-like stdin: help must not read it.
					devNull, err := os.Open(os.DevNull)
					require.NoError(t, err)
					r := runPlain(t, env, devNull, args...)
					_ = devNull.Close()
					require.Equal(t, 0, r.code, "%v: %s%s", args, r.stdout, r.stderr)
					assert.Empty(t, r.stderr, "%v: help goes to stdout", args)
					assert.Regexp(t, `^(?i)usage: `, r.stdout, "%v", args)
					if name != "help" {
						assert.Contains(t, r.stdout, "docker-credential-cgr "+name, "%v", args)
					}
					outs = append(outs, r.stdout)
				}
				assert.Equal(t, outs[0], outs[1], "-h is --help")
				assert.Equal(t, outs[0], outs[2], "help %s is %s --help", name, name)
			}
		})
	}
}

// The protocol actions' help says how to try them by hand.
func TestActionHelpTeaches(t *testing.T) {
	t.Parallel()
	for action, want := range map[string]string{
		"get":     "echo cgr.dev | docker-credential-cgr get\n",
		"store":   `| docker-credential-cgr store`,
		"erase":   "echo cgr.dev | docker-credential-cgr erase",
		"list":    `{"cgr.dev":"_token"}`,
		"version": "--version, -v",
	} {
		assert.Contains(t, actionHelp[action], want, action)
	}
	assert.Contains(t, actionHelp["get"], "docker", "says who runs it")
	assert.Contains(t, actionHelp["store"], "docker login")
	assert.Contains(t, actionHelp["erase"], "docker logout")
}

func TestNoArgumentPrintsHelp(t *testing.T) {
	t.Parallel()
	r := runPlain(t, plainEnv(t), nil)
	assert.Equal(t, 1, r.code, "a missing action is still the protocol's exit 1")
	assert.True(t, strings.HasPrefix(r.stdout, "Usage: docker-credential-cgr <command> [flags]\n"), r.stdout)
	assert.Contains(t, r.stdout, "configure-docker")
}

func TestHelpForAnUnknownCommand(t *testing.T) {
	t.Parallel()
	r := runPlain(t, plainEnv(t), nil, "help", "nope\x1b[31m")
	assert.Equal(t, 2, r.code)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "docker-credential-cgr: no command \"nope\\x1b[31m\"; the commands are listed by docker-credential-cgr --help\n", r.stderr)

	// Anything else is still the protocol's unknown action.
	r = runPlain(t, plainEnv(t), nil, "nope")
	assert.Equal(t, 1, r.code)
	assert.Equal(t, "docker-credential-cgr: unknown action: nope\n", r.stdout)
}

// The kubelet always pipes a request in. From a terminal, or with stdin on
// a device, the plugin says how to try it instead of waiting forever.
func TestKubeletWithATerminalOnStdin(t *testing.T) {
	t.Parallel()
	devNull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer func() { _ = devNull.Close() }()
	r := runPlain(t, plainEnv(t), devNull, "kubelet")
	checkKubeletTerminal(t, r)

	// A pipe, even an empty one, is still read as a request.
	r = runPlain(t, plainEnv(t), strings.NewReader(""), "kubelet")
	assert.Equal(t, 1, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "CredentialProviderRequest")
	assert.NotContains(t, r.stderr, "terminal")
}

func checkKubeletTerminal(t *testing.T, r result) {
	t.Helper()
	assert.Equal(t, 2, r.code)
	assert.Empty(t, r.stdout, "stdout is the kubelet's")
	assert.Contains(t, r.stderr, "stdin is a terminal")
	assert.Contains(t, r.stderr, "the kubelet runs this command")
	assert.Contains(t, r.stderr, "\n  "+kubeletTry+"\n")
}

func TestInteractive(t *testing.T) {
	t.Parallel()
	for mode, want := range map[fs.FileMode]bool{
		fs.ModeDevice | fs.ModeCharDevice: true, // a terminal, /dev/null
		fs.ModeNamedPipe:                  false,
		0:                                 false, // a file
		fs.ModeSocket:                     false,
		fs.ModeDevice:                     false, // a block device is not a terminal
	} {
		assert.Equal(t, want, interactive(fakeInfo{mode}), "%v", mode)
	}
}

type fakeInfo struct{ mode fs.FileMode }

func (f fakeInfo) Name() string       { return "stdin" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return nil }
