package main

import (
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOuterEnvKeepsOnlyWhatTheHelperDoesNotRead(t *testing.T) {
	t.Parallel()
	got := outerEnv([]string{
		"PATH=/usr/bin", "LANG=C.UTF-8", "TERM=xterm",
		"HOME=/root", "GODEBUG=gctrace=1", "CHAINGUARD_IDENTITY=x", "CHAINGUARD_CACHE_DIR=/c", "ACTIONS_ID_TOKEN_REQUEST_URL=u",
		"DOCKER_CONFIG=/d", "XDG_CONFIG_HOME=/x", "SSL_CERT_FILE=/s", "https_proxy=http://p", "NO_PROXY=*",
	})
	assert.Equal(t, []string{"PATH=/usr/bin", "LANG=C.UTF-8", "TERM=xterm"}, got)
	assert.Equal(t, []string{"HOME=/root", "PATH=/usr/bin"},
		withoutGoSettings([]string{"HOME=/root", "GOMAXPROCS=1", "PATH=/usr/bin", "GOGC=off", "GOMEMLIMIT=1GiB", "GODEBUG=x=1"}),
		"the floors and peers keep all but the Go runtime's settings")
}

// TestEveryLoopCommandRunsCopiesOfItsOwn: a copy run more often than once
// a round runs faster (its pages are still in the processor's caches),
// so no two commands of the loop may share a staged file, and each has as
// many copies as asked, with the bytes of what it stands for.
func TestEveryLoopCommandRunsCopiesOfItsOwn(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	write := func(name string) string {
		p := filepath.Join(src, name)
		require.NoError(t, os.WriteFile(p, []byte(name), 0o600))
		return p
	}
	helper := write("docker-credential-cgr")
	o := options{against: write("old"), peers: peerFlag{{"peer", write("peer")}}}
	var b baselines
	for _, s := range b.builds() {
		*s.bin = write(s.name)
	}
	st, err := stageAll(t.TempDir(), helper, o, b, 3)
	require.NoError(t, err)

	h := &helperRuns{bin: st.get[0], host: "registry.example", tokenFile: "token", env: []string{"HOME=/h", "CHAINGUARD_IDENTITY_TOKEN=token"}}
	cmds := loopCommands(h, "entry", o, st)
	// What each command must run: the file's content is its source's name.
	want := map[string]string{
		"docker-credential-cgr get (cached)":     "docker-credential-cgr",
		"docker-credential-cgr kubelet (cached)": "docker-credential-cgr",
		"docker-credential-cgr version":          "docker-credential-cgr",
		"against: get (cached)":                  "old",
		"get (cached), a second copy":            "docker-credential-cgr",
		"floor: reads one file":                  "baseline",
		"floor: + net/http linked":               "nethttp",
		floorName:                                "httpsjwt",
		faultsName:                               "httpsjwt-faults",
		leanGetName:                              "leanget",
		checkedGetName:                           "checkedget",
		"peer version":                           "peer",
	}
	seen := map[string]string{}
	for _, c := range cmds {
		require.Len(t, c.bins, 3, c.name)
		require.Contains(t, want, c.name)
		for _, bin := range c.bins {
			if other, ok := seen[bin]; ok {
				t.Errorf("%s and %s both run %s", other, c.name, bin)
			}
			seen[bin] = c.name
			got, err := os.ReadFile(bin)
			require.NoError(t, err)
			assert.Equal(t, want[c.name], string(got), c.name)
			assert.Equal(t, bin, c.run(bin).cmd.Path, "%s runs the copy it is given", c.name)
		}
		// Every command gets its environment explicitly, so that running it
		// under callgrind or time cannot leave the environment behind.
		assert.NotNil(t, c.first().cmd.Env, c.name)
		if c.name == leanGetName || c.name == checkedGetName {
			// Its ratio is the work a cached get does: it reads the files
			// get reads, with get's environment and stdin.
			lean, get := c.first().cmd, cmds[0].first().cmd
			assert.Equal(t, []string{"token", "entry"}, lean.Args[1:])
			assert.Contains(t, get.Env, "CHAINGUARD_IDENTITY_TOKEN="+lean.Args[1], "the token file get is pointed at")
			assert.Equal(t, get.Env, lean.Env)
			in, err := io.ReadAll(lean.Stdin)
			require.NoError(t, err)
			getIn, err := io.ReadAll(get.Stdin)
			require.NoError(t, err)
			assert.Equal(t, string(getIn), string(in))
		}
	}
	assert.Len(t, seen, len(want)*3)
}

// TestBaselineSourcesParse: the baselines are built from source strings
// only when make bench runs. A syntax slip in one fails here; anything
// else the compiler refuses fails procbench before any timing starts, as
// every baseline is built first.
func TestBaselineSourcesParse(t *testing.T) {
	t.Parallel()
	for _, s := range new(baselines).builds() {
		_, err := parser.ParseFile(token.NewFileSet(), s.name+".go", s.src, parser.AllErrors)
		assert.NoError(t, err, s.name)
	}
}

// TestRunRoundsTakesEachCopyInTurn: over six rounds, each of a command's
// three copies runs twice, and only that command's.
func TestRunRoundsTakesEachCopyInTurn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "ran")
	var cmds []command
	for _, name := range []string{"a", "b"} {
		c := command{name: name, run: func(bin string) proc { return proc{exec.Command(bin), "ok"} }}
		for i := range 3 {
			bin := filepath.Join(dir, fmt.Sprintf("%s%d", name, i))
			require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\necho ok\necho \"$0\" >>"+log+"\n"), 0o700))
			c.bins = append(c.bins, bin)
		}
		cmds = append(cmds, c)
	}
	samples, err := runRounds(cmds, 6)
	require.NoError(t, err)
	require.Len(t, samples, 2)
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	runs := map[string]int{}
	for _, line := range strings.Fields(string(b)) {
		runs[filepath.Base(line)]++
	}
	assert.Equal(t, map[string]int{"a0": 2, "a1": 2, "a2": 2, "b0": 2, "b1": 2, "b2": 2}, runs)
	for _, s := range samples {
		assert.Len(t, s, 6)
	}
}

// TestUnderKeepsTheCommandLineEnvironmentAndStdin: a command run by
// valgrind or time keeps its arguments, environment and stdin, and a
// variable given again takes the new value.
func TestUnderKeepsTheCommandLineEnvironmentAndStdin(t *testing.T) {
	t.Parallel()
	c := exec.Command("/bin/helper", "get", "x")
	c.Env = []string{"A=1", "GODEBUG=gctrace=1"}
	c.Stdin = strings.NewReader("host")
	u := under("/usr/bin/time", []string{"-f", "%M"}, proc{c, ""}, "GODEBUG=asyncpreemptoff=1")
	assert.Equal(t, []string{"/usr/bin/time", "-f", "%M", "/bin/helper", "get", "x"}, u.Args)
	assert.Contains(t, u.Env, "A=1")
	assert.Equal(t, c.Stdin, u.Stdin)
	env := u.Environ() // what os/exec passes: the last value of each variable
	assert.Contains(t, env, "GODEBUG=asyncpreemptoff=1")
	assert.NotContains(t, env, "GODEBUG=gctrace=1")
}

// TestFaultShareTakesThePerFaultCostFromTheCalibration: 32 more faults
// costing 8% is 0.25% a fault, so our get's 20 faults beyond the floor's
// account for 0.05 of its ratio; nothing is said without the calibration.
func TestFaultShareTakesThePerFaultCostFromTheCalibration(t *testing.T) {
	t.Parallel()
	r := results{Loop: []commandResult{
		{Name: "get", Kind: "ours", Faults: 320, Ratio: spread{Median: 1.10}},
		{Name: floorName, Kind: "floor", Faults: 300, Ratio: spread{Median: 1}},
		{Name: faultsName, Kind: "floor", Faults: 332, Ratio: spread{Median: 1.08}},
		{Name: leanGetName, Kind: "floor", Faults: 296, Ratio: spread{Median: 1.02}},
		{Name: "peer version", Kind: "peer", Faults: 400, Ratio: spread{Median: 1.3}},
	}}
	s := r.faultShare()
	assert.Contains(t, s, "made 32 more than the floor and took 1.080× its time, 0.25% of the floor's time a fault")
	assert.Contains(t, s, "get +20 faults, +0.050 of its 1.10×")
	assert.Contains(t, s, leanGetName+" -4 faults, -0.010 of its 1.02×")
	assert.NotContains(t, s, "peer")

	r.Loop[2].Faults = 300
	assert.Empty(t, r.faultShare(), "a calibration that made no more faults measures nothing")
	r.Loop = r.Loop[:2]
	assert.Empty(t, r.faultShare())
}

// TestBaselinesBuild builds every baseline as make bench does, so that a
// type error in one of their sources fails here and not only when the
// benchmarks run, which CI does not do.
func TestBaselinesBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds six programs")
	}
	t.Chdir(filepath.Join("..", "..")) // buildBaseline reads the project's go.mod
	b, err := buildBaselines(t.TempDir())
	require.NoError(t, err)
	for _, s := range b.builds() {
		fi, err := os.Stat(*s.bin)
		require.NoError(t, err, s.name)
		assert.True(t, fi.Mode().IsRegular() && fi.Mode().Perm()&0o100 != 0, "%s is built, executable", s.name)
	}
}
