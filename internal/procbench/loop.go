package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// command is one binary in the alternating loop, in its staged copies.
type command struct {
	name string
	kind string   // ours, floor or peer
	bins []string // the staged copies, which the loop takes in turn
	run  func(bin string) proc
}

// first is the command run from its first copy, for the measures that do
// not depend on the copy (instructions, peak RSS).
func (c command) first() proc { return c.run(c.bins[0]) }

// loopCommands are the cached get and kubelet call, the baselines (the
// HTTPS+jwt one is the floor every ratio is taken against) and the peers'
// `version`, which does nothing, each from its staged copies.
func loopCommands(h *helperRuns, entry string, o options, st staged) []command {
	cmd := func(name, kind string, bins []string, run func(bin string) proc) command {
		return command{name: name, kind: kind, bins: bins, run: run}
	}
	get := func(bin string) proc { return getWith(bin, h.host, h.env) }
	cmds := []command{
		cmd("docker-credential-cgr get (cached)", "ours", st.get, get),
		cmd("docker-credential-cgr kubelet (cached)", "ours", st.kubelet, func(bin string) proc { return kubeletWith(bin, h.host, h.env, "") }),
		// Starts, reads its settings as get does, and prints the version:
		// what the binary costs before a get's own work.
		cmd("docker-credential-cgr version", "ours", st.version, func(bin string) proc {
			c := exec.Command(bin, "version")
			c.Env = h.env
			return proc{c, "docker-credential-cgr"}
		}),
	}
	if st.against != nil {
		cmds = append(cmds,
			cmd("against: get (cached)", "ours", st.against, get),
			cmd("get (cached), a second copy", "ours", st.again, get))
	}
	// The lean and checked gets read the files a get reads, with its
	// environment and stdin.
	reads := func(bin string) proc {
		c := exec.Command(bin, h.tokenFile, entry)
		c.Env, c.Stdin = h.env, strings.NewReader(h.host)
		return proc{c, wantGet}
	}
	outer := withoutGoSettings(os.Environ())
	withOuter := func(c *exec.Cmd) *exec.Cmd { c.Env = outer; return c }
	file := func(bin string) proc { return proc{withOuter(exec.Command(bin, entry)), `"token"`} }
	cmds = append(cmds,
		cmd("floor: reads one file", "floor", st.plain, file),
		cmd("floor: + net/http linked", "floor", st.netHTTP, file),
		cmd(floorName, "floor", st.httpsJWT, file),
		cmd(faultsName, "floor", st.faults, file),
		cmd(leanGetName, "floor", st.leanGet, reads),
		cmd(checkedGetName, "floor", st.checkedGet, reads),
	)
	for i, p := range o.peers {
		cmds = append(cmds, cmd(p.name+" version", "peer", st.peers[i], func(bin string) proc {
			return proc{withOuter(exec.Command(bin, "version")), ""}
		}))
	}
	return cmds
}

// floorName is the command every ratio is taken against: a binary that
// links an HTTPS client and golang-jwt, never runs them, and reads the
// cache entry.
const floorName = "floor: + HTTPS client and golang-jwt linked"

// faultsName is the calibration: the floor with calibrationPages page
// faults more.
var faultsName = fmt.Sprintf("floor + %d fresh pages touched", calibrationPages)

// leanGetName is the floor doing a cached get's reads with none of its
// checks (leanGetSrc).
const leanGetName = "lean get: a cached get's reads, unchecked"

// checkedGetName is the lean get with a cached get's checks
// (checkedGetSrc).
const checkedGetName = "checked get: the reads and a hit's checks"

// plainName is the least any helper does; the first table is in
// ratios to it.
const plainName = "floor: reads one file"

// runLoop runs every command once per round, in a new random order each
// round, so that neither drift in the machine's load nor the command run
// just before (a fixed neighbour was worth a few percent) favours one of
// them, and from each of its copies in turn.
func runLoop(cmds []command, rounds int) ([]commandResult, error) {
	samples, err := runRounds(cmds, rounds)
	if err != nil {
		return nil, err
	}
	floor := samples[slices.IndexFunc(cmds, func(c command) bool { return c.name == floorName })]
	plain := samples[slices.IndexFunc(cmds, func(c command) bool { return c.name == plainName })]
	out := make([]commandResult, len(cmds))
	for i, c := range cmds {
		r := commandResult{Name: c.name, Kind: c.kind}
		if fi, err := os.Stat(c.bins[0]); err == nil {
			r.SizeBytes = fi.Size()
		}
		ms, cpu, faults, toFloor, toPlain, toGet := make([]float64, rounds), make([]float64, rounds), make([]float64, rounds), make([]float64, rounds), make([]float64, rounds), make([]float64, rounds)
		for k, s := range samples[i] {
			ms[k], cpu[k], faults[k] = s.ms, s.cpuMs, s.faults
			toFloor[k], toPlain[k], toGet[k] = s.ms/floor[k].ms, s.ms/plain[k].ms, s.ms/samples[0][k].ms
		}
		r.MedianMs, r.CPUMs, r.Faults = median(ms), median(cpu), median(faults)
		if i > 0 && c.kind == "ours" {
			r.RatioGet = median(toGet)
		}
		var err error
		if r.MaxRSSKiB, err = peakRSS(c.first, rssRuns, nil); err != nil {
			return nil, fmt.Errorf("%s under %s: %w", c.name, timeBin, err)
		}
		r.Ratio = spread{Median: median(toFloor), P10: pct(toFloor, 10), P90: pct(toFloor, 90)}
		r.RatioPlain = median(toPlain)
		out[i] = r
	}
	return out, nil
}

// runRounds times the rounds of runLoop: samples[k] are cmds[k]'s, one a
// round.
func runRounds(cmds []command, rounds int) ([][]sample, error) {
	samples := make([][]sample, len(cmds))
	order := make([]int, len(cmds))
	for i := range order {
		order[i] = i
	}
	for i := range rounds {
		rand.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] }) //nolint:gosec // G404: an order to run in, not a secret
		for _, k := range order {
			c := cmds[k]
			s, err := timeRun(c.run(c.bins[i%len(c.bins)]))
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", i, c.name, err)
			}
			samples[k] = append(samples[k], s)
		}
	}
	return samples, nil
}

// rssRuns is how many runs of each command the peak RSS is the median of.
const rssRuns = 15

func median(xs []float64) float64 { return pct(xs, 50) }

func pct(xs []float64, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}
