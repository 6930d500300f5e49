package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
)

// command is one binary in the alternating loop.
type command struct {
	name string
	kind string // ours, floor or peer
	bin  string // for its size
	make func() proc
}

// loopCommands are the cached get and kubelet call, the baselines (the
// HTTPS+jwt one is the floor every ratio is taken against) and the peers'
// `version`, which does nothing.
func loopCommands(h *helperRuns, b baselines, entry string, o options) []command {
	cmds := []command{
		{name: "docker-credential-cgr get (cached)", kind: "ours", bin: h.bin, make: func() proc { return h.get(h.env) }},
		{name: "docker-credential-cgr kubelet (cached)", kind: "ours", bin: h.bin, make: func() proc { return h.kubelet(h.env, "") }},
		// Starts, reads its settings as get does, and prints the version:
		// what the binary costs before a get's own work.
		{name: "docker-credential-cgr version", kind: "ours", bin: h.bin, make: func() proc {
			c := exec.Command(h.bin, "version")
			c.Env = h.env
			return proc{c, "docker-credential-cgr"}
		}},
	}
	if o.against != "" {
		cmds = append(cmds,
			command{name: "against: get (cached)", kind: "ours", bin: o.against, make: func() proc { return getWith(o.against, h.host, h.env) }},
			command{name: "get (cached), a second copy", kind: "ours", bin: o.helperCopy, make: func() proc { return getWith(o.helperCopy, h.host, h.env) }})
	}
	file := func(bin string) func() proc {
		return func() proc { return proc{exec.Command(bin, entry), `"token"`} }
	}
	cmds = append(cmds,
		command{name: "floor: reads one file", kind: "floor", bin: b.plain, make: file(b.plain)},
		command{name: "floor: + net/http linked", kind: "floor", bin: b.netHTTP, make: file(b.netHTTP)},
		command{name: floorName, kind: "floor", bin: b.httpsJWT, make: file(b.httpsJWT)},
	)
	for _, p := range o.peers {
		cmds = append(cmds, command{name: p.name + " version", kind: "peer", bin: p.path, make: func() proc {
			return proc{exec.Command(p.path, "version"), ""}
		}})
	}
	return cmds
}

// floorName is the command every ratio is taken against: a binary that
// links an HTTPS client and golang-jwt, never runs them, and reads the
// cache entry.
const floorName = "floor: + HTTPS client and golang-jwt linked"

// plainName is the least any helper does; the first table is in
// ratios to it.
const plainName = "floor: reads one file"

// runLoop runs every command once per round, in a new random order each
// round, so that neither drift in the machine's load nor the command run
// just before (a fixed neighbour was worth a few percent) favours one of
// them.
func runLoop(cmds []command, rounds int) ([]commandResult, error) {
	samples := make([][]sample, len(cmds))
	order := make([]int, len(cmds))
	for i := range order {
		order[i] = i
	}
	for i := range rounds {
		rand.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] }) //nolint:gosec // G404: an order to run in, not a secret
		for _, k := range order {
			s, err := timeRun(cmds[k].make())
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", i, cmds[k].name, err)
			}
			samples[k] = append(samples[k], s)
		}
	}
	floor := samples[slices.IndexFunc(cmds, func(c command) bool { return c.name == floorName })]
	plain := samples[slices.IndexFunc(cmds, func(c command) bool { return c.name == plainName })]
	out := make([]commandResult, len(cmds))
	for i, c := range cmds {
		r := commandResult{Name: c.name, Kind: c.kind}
		if fi, err := os.Stat(c.bin); err == nil {
			r.SizeBytes = fi.Size()
		}
		ms, cpu, toFloor, toPlain, toGet := make([]float64, rounds), make([]float64, rounds), make([]float64, rounds), make([]float64, rounds), make([]float64, rounds)
		for k, s := range samples[i] {
			ms[k], cpu[k] = s.ms, s.cpuMs
			toFloor[k], toPlain[k], toGet[k] = s.ms/floor[k].ms, s.ms/plain[k].ms, s.ms/samples[0][k].ms
		}
		r.MedianMs, r.CPUMs = median(ms), median(cpu)
		if i > 0 && c.kind == "ours" {
			r.RatioGet = median(toGet)
		}
		var err error
		if r.MaxRSSKiB, err = peakRSS(c.make, rssRuns, nil); err != nil {
			return nil, fmt.Errorf("%s under %s: %w", c.name, timeBin, err)
		}
		r.Ratio = spread{Median: median(toFloor), P10: pct(toFloor, 10), P90: pct(toFloor, 90)}
		r.RatioPlain = median(toPlain)
		out[i] = r
	}
	return out, nil
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
