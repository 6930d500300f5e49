// Command procbench measures docker-credential-cgr as docker and the kubelet
// run it: one whole process per credential request. In one run it reports
//
//   - the cached `get` (and kubelet-mode call) against floor binaries and
//     peer helpers, all run alternately in one loop, as the median of the
//     per-pair ratios;
//   - a cold `get` against a sandbox STS with a fixed added delay, minus
//     that delay;
//   - fleets of N parallel cold gets, each of which must make exactly one
//     exchange, and 100 concurrent kubelet-mode calls for 20 service
//     accounts, which must make exactly 20;
//   - peak RSS (from /usr/bin/time -f %M) of a cached and a cold get, and
//     each loop command's page faults (wait4's rusage);
//   - instructions and cache misses under valgrind's callgrind;
//   - binary sizes.
//
// It exits non-zero if any timed run fails or a cached run makes an
// exchange. With -doc and -svg it rewrites the generated part of
// docs/benchmarks.md and draws the chart. `make bench` runs it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

// peerFlag collects -peer name=path, repeatable.
type peerFlag []peer

// peer is another credential helper, timed running `version`.
type peer struct{ name, path string }

func (p *peerFlag) String() string { return fmt.Sprint(*p) }

func (p *peerFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want name=path, got %q", v)
	}
	*p = append(*p, peer{name, path})
	return nil
}

// options are the command line.
type options struct {
	helper, against string
	peers           peerFlag
	pairs, coldRuns int
	// copies is how many copies of each binary the loop takes in turn.
	copies       int
	loopOnly     bool
	callgrind    bool
	delay        time.Duration
	fleets       []int
	jsonOut, doc string
	svg          string
}

func main() {
	var o options
	flag.StringVar(&o.helper, "helper", "bin/docker-credential-cgr", "the built binary (make build)")
	flag.StringVar(&o.against, "against", "", "another build of the helper (say, the commit before a change) whose cached get joins the loop, for a paired before/after ratio, and whose cold gets are paired with the helper's")
	flag.Var(&o.peers, "peer", "name=path of a peer helper whose `version` joins the loop; repeatable")
	flag.IntVar(&o.pairs, "pairs", 300, "rounds of the alternating loop: each command runs once per round")
	flag.IntVar(&o.copies, "copies", 3, "copies staged of each binary, which the loop takes in turn: one copy's pages can sit in the page cache better than another's")
	flag.IntVar(&o.coldRuns, "cold", 30, "cold gets timed with the added STS delay (and as many without)")
	flag.DurationVar(&o.delay, "delay", 50*time.Millisecond, "delay the sandbox STS adds to each exchange in the cold-get timing")
	fleets := flag.String("fleets", "8,32,128,512", "sizes of the parallel cold-get fleets")
	flag.BoolVar(&o.callgrind, "callgrind", true, "also count each cached run's instructions and cache misses under valgrind's callgrind")
	flag.BoolVar(&o.loopOnly, "loop-only", false, "only the alternating loop: for a quick before/after with -against")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.doc, "doc", "", "rewrite the generated section of this Markdown file (docs/benchmarks.md) from the results")
	flag.StringVar(&o.svg, "svg", "", "draw the results as an SVG chart in this file")
	hold := flag.String("hold", "", "instead: prime the cache, write the helper's environment to this file (one VAR=value a line) and wait for an interrupt, for strace, perf and GODEBUG runs by hand")
	flag.Parse()
	var err error
	if o.copies < 1 {
		err = errors.New("-copies must be at least 1")
	} else if o.loopOnly && (o.doc != "" || o.svg != "") {
		// Before any build or sandbox: the run could never write them.
		err = errors.New("-loop-only measures too little for -doc and -svg")
	} else if o.fleets, err = parseInts(*fleets); err == nil {
		if *hold != "" {
			err = holdSandbox(o.helper, *hold)
		} else {
			err = run(o)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "procbench:", err)
		os.Exit(1)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad fleet size %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// holdSandbox primes a cache for a cached get and keeps the sandbox up
// until interrupted, with the environment written to envFile.
func holdSandbox(helper, envFile string) error {
	helper, err := filepath.Abs(helper)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "procbench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	sb, err := sandbox.Start()
	if err != nil {
		return err
	}
	defer sb.Close()
	h, err := newHelperRuns(sb, helper, work)
	if err != nil {
		return err
	}
	if _, err := timeRun(h.get(h.env)); err != nil {
		return fmt.Errorf("priming the cache: %w", err)
	}
	env := strings.Join(h.settings, "\n") + "\nCGR_BENCH_HOST=" + h.host + "\n"
	if err := os.WriteFile(envFile, []byte(env), 0o600); err != nil {
		return err
	}
	fmt.Printf("cache primed; environment in %s; interrupt to stop\n", envFile)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

func run(o options) error {
	helper, err := filepath.Abs(o.helper)
	if err != nil {
		return err
	}
	var vg string
	if o.callgrind {
		if vg, err = findValgrind(); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp("", "procbench-")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(work); err != nil {
			fmt.Fprintln(os.Stderr, "procbench: cleaning up:", err)
		}
	}()

	bases, err := buildBaselines(work)
	if err != nil {
		return err
	}
	st, err := stageAll(work, helper, o, bases, o.copies)
	if err != nil {
		return err
	}
	sb, err := sandbox.Start()
	if err != nil {
		return err
	}
	defer sb.Close()
	h, err := newHelperRuns(sb, st.get[0], work)
	if err != nil {
		return err
	}

	res := &results{Machine: describeMachine(), Date: time.Now().UTC().Format("2006-01-02")}
	fmt.Println("machine:", res.Machine)
	if !o.loopOnly {
		if res.Fleets, err = runFleets(h, o.fleets); err != nil {
			return err
		}
		if res.Kubelet, err = runKubeletFleet(h, 20, 100); err != nil {
			return err
		}
		if res.Cold, err = runCold(h, plainRoute(sb), o.coldRuns, o.delay, st.get, st.against); err != nil {
			return err
		}
		route, closeFront, err := tlsRoute(sb, work)
		if err != nil {
			return err
		}
		defer closeFront()
		if res.ColdHTTPS, err = runCold(h, route, o.coldRuns, o.delay, st.get, st.against); err != nil {
			return err
		}
	}
	// The loop's cached gets read the entry a get leaves in the main cache.
	if _, err := timeRun(h.get(h.env)); err != nil {
		return fmt.Errorf("priming the cache: %w", err)
	}
	entry, err := onlyCacheEntry(h.cacheDir)
	if err != nil {
		return err
	}
	cmds := loopCommands(h, entry, o, st)
	before := sb.STS.Requests()
	if res.Loop, err = runLoop(cmds, o.pairs); err != nil {
		return err
	}
	res.Pairs = o.pairs
	res.printLoop()
	if o.callgrind {
		if res.Instructions, err = runCallgrind(vg, cmds, work); err != nil {
			return err
		}
		res.printInstructions()
	}
	// After callgrind too: a cached run that missed under valgrind would
	// have counted an exchange.
	if n := sb.STS.Requests() - before; n != 0 {
		return fmt.Errorf("the cached runs made %d STS requests; the cache is not being hit", n)
	}
	return res.write(o)
}
