package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// callgrindRuns is how many runs each count is the least of: the Go
// runtime's background threads make a run's count vary by a few percent,
// and the least is the work the command itself needs.
const callgrindRuns = 3

// instrResult is one command run under callgrind with its cache
// simulation, which starts empty as a new process's caches do. Unlike
// wall time, the counts do not move with the machine's load, so a change
// of a few percent shows in them where the alternating loop's noise hides
// it.
type instrResult struct {
	Name   string
	Ir     int64 // instructions executed
	L1Miss int64 // first-level cache misses, instruction and data
	LLMiss int64 // last-level cache misses, instruction and data
	// Est is callgrind's cycle estimate, Ir + 10·L1Miss + 100·LLMiss
	// (the formula of valgrind's manual), which weighs the misses of a
	// cold process that instruction counts leave out.
	Est      int64
	EstRatio float64 // Est to the floor's
}

// findValgrind is valgrind's path, looked up before any timing starts so
// that a machine without it fails at once, not after the loop.
func findValgrind() (string, error) {
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		return "", errors.New("valgrind is not on PATH (Debian package valgrind); -callgrind=false skips the instruction counts")
	}
	return vg, nil
}

// runCallgrind counts each command's instructions and cache misses, the
// least of callgrindRuns runs, with valgrind at vg.
func runCallgrind(vg string, cmds []command, work string) ([]instrResult, error) {
	out := make([]instrResult, 0, len(cmds))
	for _, c := range cmds {
		best := instrResult{Name: c.name}
		for i := range callgrindRuns {
			r, err := callgrindOnce(vg, c, filepath.Join(work, fmt.Sprintf("callgrind.%d", i)))
			if err != nil {
				return nil, fmt.Errorf("%s under callgrind: %w", c.name, err)
			}
			if best.Ir == 0 || r.Est < best.Est {
				r.Name = c.name
				best = r
			}
		}
		out = append(out, best)
	}
	floor := out[slices.IndexFunc(out, func(r instrResult) bool { return r.Name == floorName })]
	for i := range out {
		out[i].EstRatio = float64(out[i].Est) / float64(floor.Est)
	}
	return out, nil
}

// callgrindOnce runs c once under callgrind. Go's asynchronous preemption
// is off there: valgrind 3.19 (Debian 12) fails an assertion on the
// signals it sends in about half the runs with a full environment, and a
// process this short is never preempted anyway. Like a timed run, it must
// print its answer. Only stderr goes into an error: stdout holds a token.
func callgrindOnce(vg string, c command, file string) (instrResult, error) {
	p := c.first()
	run := under(vg, []string{"--tool=callgrind", "--cache-sim=yes", "--callgrind-out-file=" + file}, p, "GODEBUG=asyncpreemptoff=1")
	var stdout, stderr strings.Builder
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Run(); err != nil {
		return instrResult{}, fmt.Errorf("%w\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), p.want) {
		return instrResult{}, errors.New("it printed no answer")
	}
	b, err := os.ReadFile(file) //nolint:gosec // G304: our own temporary folder
	if err != nil {
		return instrResult{}, err
	}
	return parseCallgrind(string(b))
}

// parseCallgrind reads the events and summary lines of a callgrind
// output file.
func parseCallgrind(s string) (instrResult, error) {
	var names, values []string
	for l := range strings.Lines(s) {
		if v, ok := strings.CutPrefix(l, "events:"); ok {
			names = strings.Fields(v)
		} else if v, ok := strings.CutPrefix(l, "summary:"); ok {
			values = strings.Fields(v)
		}
	}
	if len(names) == 0 || len(names) != len(values) {
		return instrResult{}, errors.New("no events and summary lines in callgrind's output")
	}
	ev := map[string]int64{}
	for i, n := range names {
		v, err := strconv.ParseInt(values[i], 10, 64)
		if err != nil {
			return instrResult{}, fmt.Errorf("callgrind's summary: %w", err)
		}
		ev[n] = v
	}
	r := instrResult{
		Ir:     ev["Ir"],
		L1Miss: ev["I1mr"] + ev["D1mr"] + ev["D1mw"],
		LLMiss: ev["ILmr"] + ev["DLmr"] + ev["DLmw"],
	}
	if r.Ir == 0 {
		return instrResult{}, errors.New("callgrind counted no instructions; was --cache-sim=yes given?")
	}
	r.Est = r.Ir + 10*r.L1Miss + 100*r.LLMiss
	return r, nil
}
