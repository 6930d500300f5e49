package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// results is everything one run measured; -json writes it as is.
type results struct {
	Machine string          `json:"machine"`
	Date    string          `json:"date"`
	Args    []string        `json:"args"`
	Pairs   int             `json:"pairs"`
	Loop    []commandResult `json:"loop"`
	// Instructions are the loop's commands under callgrind.
	Instructions []instrResult `json:"instructions,omitempty"`
	Cold         coldResult    `json:"cold"`
	ColdHTTPS    coldResult    `json:"cold_https"`
	Fleets       []fleetResult `json:"fleets"`
	Kubelet      kubeletResult `json:"kubelet"`
}

// spread is a median with its 10th and 90th percentiles.
type spread struct{ Median, P10, P90 float64 }

// commandResult is one command of the alternating loop.
type commandResult struct {
	Name, Kind string
	MedianMs   float64
	CPUMs      float64 // median user plus system time
	Faults     float64 // median page faults, minor and major
	Ratio      spread  // per-round ratio to the floor (HTTPS+jwt)
	RatioGet   float64 // for our other runs, the median per-round ratio to the cached get (the first command)
	RatioPlain float64 // median per-round ratio to the binary that only reads one file
	MaxRSSKiB  int64
	SizeBytes  int64
}

type coldResult struct {
	Route      string // the cache folder's name: cold (plain HTTP) or cold-https
	Runs       int
	DelayMs    float64
	DelayedMs  float64 // median wall with the STS delayed
	MinusDelay spread  // wall less the delay
	DirectMs   float64 // median wall with no delay
	// RoundTripMs is the median delayed exchange made from procbench
	// itself on a new connection; BeyondRoundTrip is each delayed cold
	// get less the round trip made just before it.
	RoundTripMs     float64
	BeyondRoundTrip spread
	MaxRSSKiB       int64
	// LessAgainst is each delayed cold get less the -against build's,
	// run beside it (in a random order) under the same delay; nil without
	// -against.
	LessAgainst *spread `json:",omitempty"`
}

type fleetResult struct {
	N, Exchanges, Failures int
	WallMs                 float64
}

type kubeletResult struct {
	Calls, Accounts, Exchanges, Failures int
	WallMs                               float64
}

func describeMachine() string {
	model, mem, kernel := "", "", runtime.GOOS
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v) + ", "
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.0f GiB, ", float64(kb)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d vCPU %s%s%s, %s %s/%s", runtime.NumCPU(), model, mem, kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func (r *results) printLoop() {
	fmt.Printf("cached runs and peers, %d alternating rounds (ratios are medians of per-round ratios):\n", r.Pairs)
	fmt.Printf("  %-46s %8s %8s %7s %18s %9s %9s %9s\n", "command", "median", "CPU", "faults", "/floor (p10-p90)", "/1 file", "peak RSS", "size")
	for _, c := range r.Loop {
		fmt.Printf("  %-46s %6.2fms %6.2fms %7.0f %5.2fx (%.2f-%.2f) %8.2fx %9s %6.2fMiB\n", c.Name, c.MedianMs, c.CPUMs, c.Faults, c.Ratio.Median, c.Ratio.P10, c.Ratio.P90,
			c.RatioPlain, mib(c.MaxRSSKiB), float64(c.SizeBytes)/(1<<20))
	}
	for _, c := range r.Loop {
		if c.RatioGet != 0 {
			fmt.Printf("  %s / %s: median per-round ratio %.3fx\n", c.Name, r.Loop[0].Name, c.RatioGet)
		}
	}
	if s := r.faultShare(); s != "" {
		fmt.Println("  " + s)
	}
}

// faultShare says, from the calibration floor, what a page fault costs a
// process in this run, and how much of each of our commands' ratio to the
// floor (and the lean and checked gets': the work alone, and with a hit's
// checks) its page faults beyond the floor's would account for at that
// cost.
// Empty when the calibration did not make more faults than the floor.
func (r *results) faultShare() string {
	fi := slices.IndexFunc(r.Loop, func(c commandResult) bool { return c.Name == floorName })
	ci := slices.IndexFunc(r.Loop, func(c commandResult) bool { return c.Name == faultsName })
	if fi < 0 || ci < 0 || r.Loop[ci].Faults <= r.Loop[fi].Faults {
		return ""
	}
	floor, cal := r.Loop[fi], r.Loop[ci]
	extra := cal.Faults - floor.Faults
	perFault := (cal.Ratio.Median - 1) / extra
	var parts []string
	for _, c := range r.Loop {
		if c.Kind == "ours" || c.Name == leanGetName || c.Name == checkedGetName {
			parts = append(parts, fmt.Sprintf("%s %+.0f faults, %+.3f of its %.2f×", c.Name, c.Faults-floor.Faults, (c.Faults-floor.Faults)*perFault, c.Ratio.Median))
		}
	}
	return fmt.Sprintf("Page faults: the floor with %d fresh pages touched made %.0f more than the floor and took %.3f× its time, %.2f%% of the floor's time a fault. At that cost, the faults beyond the floor's account for: %s.",
		calibrationPages, extra, cal.Ratio.Median, 100*perFault, strings.Join(parts, "; "))
}

// write saves the results where the options ask.
func (r *results) write(o options) error {
	r.Args = os.Args[1:]
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o600); err != nil {
			return err
		}
	}
	if o.doc != "" {
		if err := r.rewriteDoc(o.doc, o.svg); err != nil {
			return err
		}
	}
	if o.svg != "" {
		return r.chart(o.svg)
	}
	return nil
}

// The generated section of the benchmarks page lies between these lines;
// the rest of the page is written by hand.
const (
	docBegin = "<!-- procbench: begin generated section; `make bench` rewrites it -->"
	docEnd   = "<!-- procbench: end generated section -->"
)

func (r *results) rewriteDoc(path, svg string) error {
	old, err := os.ReadFile(path) //nolint:gosec // G304: the page named on our own command line
	if err != nil {
		return err
	}
	before, rest, ok1 := strings.Cut(string(old), docBegin)
	_, after, ok2 := strings.Cut(rest, docEnd)
	if !ok1 || !ok2 {
		return errors.New(path + " has no generated section: add the procbench begin and end lines where it goes")
	}
	var b bytes.Buffer
	b.WriteString(docBegin + "\n\n")
	fmt.Fprintf(&b, "Machine: %s. Measured on %s with:\n\n```\ngo run ./internal/procbench %s\n```\n\n", r.Machine, r.Date, strings.Join(r.Args, " "))
	if svg != "" {
		fmt.Fprintf(&b, "![Cached runs as ratios to the floor, and the wall time of N parallel cold gets](%s)\n\n", baseName(svg))
	}
	fmt.Fprintf(&b, "Cached runs, the floors and the peers, %d alternating rounds. Ratios are medians of the per-round ratios; the floor is a stripped Go binary that links an HTTPS client and golang-jwt, never runs them, and reads the cache entry.\n\n", r.Pairs)
	b.WriteString("| command | median wall | median CPU | median page faults | ratio to the floor (p10–p90) | ratio to a binary that reads one file | peak RSS | binary size |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Loop {
		fmt.Fprintf(&b, "| %s | %.2f ms | %.2f ms | %.0f | **%.2f×** (%.2f–%.2f) | %.2f× | %s | %.2f MiB |\n", c.Name, c.MedianMs, c.CPUMs, c.Faults, c.Ratio.Median, c.Ratio.P10, c.Ratio.P90,
			c.RatioPlain, mib(c.MaxRSSKiB), float64(c.SizeBytes)/(1<<20))
	}
	if s := r.faultShare(); s != "" {
		b.WriteString("\n" + s + "\n")
	}
	if len(r.Instructions) > 0 {
		b.WriteString("\nThe same commands under valgrind's callgrind, with its cache simulation, which starts empty as a new process's caches do; the least of " + strconv.Itoa(callgrindRuns) + " runs each, with Go's asynchronous preemption off (valgrind 3.19 fails on its signals). These counts do not move with the machine's load. The estimate is callgrind's, instructions + 10 × first-level misses + 100 × last-level misses.\n\n")
		b.WriteString("| command | instructions | first-level misses | last-level misses | estimated cycles | ratio to the floor's estimate |\n|---|---|---|---|---|---|\n")
		for _, c := range r.Instructions {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | **%.2f×** |\n", c.Name, thousands(c.Ir), thousands(c.L1Miss), thousands(c.LLMiss), thousands(c.Est), c.EstRatio)
		}
	}
	fmt.Fprintf(&b, "\nCold `get` (the cache folder and lock file there, the entry gone, as when the token ran out; one exchange each), %d runs with the sandbox STS delaying every answer by %.0f ms and %d without, alternately. The STS is reached as the sandbox serves it, plain HTTP on loopback, and through an HTTPS front, as the real one is: there the helper trusts the front through `SSL_CERT_FILE`, a copy of this machine's CA bundle with the front's certificate added, and loads its roots as it would in production.\n\n", r.Cold.Runs, r.Cold.DelayMs, r.Cold.Runs)
	b.WriteString("| measure | plain HTTP | HTTPS |\n|---|---|---|\n")
	c, s := r.Cold, r.ColdHTTPS
	fmt.Fprintf(&b, "| wall, STS delayed %.0f ms | %.1f ms | %.1f ms |\n", c.DelayMs, c.DelayedMs, s.DelayedMs)
	fmt.Fprintf(&b, "| wall less the delay | %.1f ms (p10 %.1f, p90 %.1f) | %.1f ms (p10 %.1f, p90 %.1f) |\n", c.MinusDelay.Median, c.MinusDelay.P10, c.MinusDelay.P90, s.MinusDelay.Median, s.MinusDelay.P10, s.MinusDelay.P90)
	fmt.Fprintf(&b, "| one delayed exchange from procbench itself, new connection (the round trip) | %.1f ms | %.1f ms |\n", c.RoundTripMs, s.RoundTripMs)
	fmt.Fprintf(&b, "| wall less that round trip | **%.1f ms** (p10 %.1f, p90 %.1f) | **%.1f ms** (p10 %.1f, p90 %.1f) |\n", c.BeyondRoundTrip.Median, c.BeyondRoundTrip.P10, c.BeyondRoundTrip.P90, s.BeyondRoundTrip.Median, s.BeyondRoundTrip.P10, s.BeyondRoundTrip.P90)
	fmt.Fprintf(&b, "| wall, no delay | %.1f ms | %.1f ms |\n", c.DirectMs, s.DirectMs)
	fmt.Fprintf(&b, "| peak RSS | %s | %s |\n", mib(c.MaxRSSKiB), mib(s.MaxRSSKiB))
	b.WriteString("\nFleets: N `get` processes started at once, each fleet on an empty cache of its own.\n\n| N | exchanges | failures | wall |\n|---|---|---|---|\n")
	for _, f := range r.Fleets {
		fmt.Fprintf(&b, "| %d | **%d** | %d | %.0f ms |\n", f.N, f.Exchanges, f.Failures, f.WallMs)
	}
	k := r.Kubelet
	fmt.Fprintf(&b, "\n%d concurrent kubelet-mode calls in service-account mode for %d service accounts, on an empty cache: **%d exchanges**, %d failures, %.0f ms wall.\n\n", k.Calls, k.Accounts, k.Exchanges, k.Failures, k.WallMs)
	b.WriteString(docEnd)
	return os.WriteFile(path, []byte(before+b.String()+after), 0o600) //nolint:gosec // G703: the page named on our own command line
}

func (r *results) printInstructions() {
	fmt.Printf("under callgrind (least of %d runs; estimate = Ir + 10 L1 misses + 100 LL misses):\n", callgrindRuns)
	fmt.Printf("  %-46s %12s %10s %10s %12s %8s\n", "command", "instructions", "L1 miss", "LL miss", "estimate", "/floor")
	for _, c := range r.Instructions {
		fmt.Printf("  %-46s %12d %10d %10d %12d %7.2fx\n", c.Name, c.Ir, c.L1Miss, c.LLMiss, c.Est, c.EstRatio)
	}
}

// thousands writes n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func baseName(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// Colours by kind of command.
var (
	oursColor  = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	floorColor = color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff}
	peerColor  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// chart draws, side by side, each command's ratio to the floor and the
// fleets' wall time against N.
func (r *results) chart(path string) error {
	ratios := plot.New()
	ratios.Title.Text = "Whole process: ratio to the floor"
	ratios.X.Label.Text = "median of per-round ratios (dashed: the floor)"
	ratios.X.Min = 0
	top := 1.0
	var labels plotter.XYLabels
	for i, c := range r.Loop {
		// Top to bottom in table order, each bar labelled at its end: tick
		// labels beside the axis would be measured in one font and drawn
		// in whichever the viewer has.
		pos := float64(len(r.Loop) - 1 - i)
		bar, err := plotter.NewBarChart(plotter.Values{c.Ratio.Median}, vg.Points(14))
		if err != nil {
			return err
		}
		bar.Horizontal, bar.XMin, bar.LineStyle.Width = true, pos, 0
		bar.Color = map[string]color.Color{"ours": oursColor, "floor": floorColor, "peer": peerColor}[c.Kind]
		ratios.Add(bar)
		labels.XYs = append(labels.XYs, plotter.XY{X: c.Ratio.Median, Y: pos})
		labels.Labels = append(labels.Labels, fmt.Sprintf(" %.2f×  %s", c.Ratio.Median, c.Name))
		top = max(top, c.Ratio.Median)
	}
	names, err := plotter.NewLabels(labels)
	if err != nil {
		return err
	}
	for i := range names.TextStyle {
		names.TextStyle[i].YAlign = draw.YCenter
	}
	ratios.Add(names)
	ratios.X.Max = top * 2.3
	ratios.Y.Min, ratios.Y.Max = -0.6, float64(len(r.Loop))-0.4
	ratios.HideY()
	one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.5}, {X: 1, Y: float64(len(r.Loop)) - 0.5}})
	if err != nil {
		return err
	}
	one.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	ratios.Add(one)

	fleet := plot.New()
	fleet.Title.Text = "N parallel cold gets (one exchange each fleet)"
	fleet.X.Label.Text = "N processes (log)"
	fleet.Y.Label.Text = "wall time, ms (log)"
	var ticks plot.ConstantTicks
	for _, f := range r.Fleets {
		ticks = append(ticks, plot.Tick{Value: float64(f.N), Label: fmt.Sprint(f.N)})
	}
	fleet.X.Scale, fleet.X.Tick.Marker = plot.LogScale{}, ticks
	fleet.Y.Scale, fleet.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	pts := make(plotter.XYs, len(r.Fleets))
	for i, f := range r.Fleets {
		pts[i] = plotter.XY{X: float64(f.N), Y: f.WallMs}
	}
	if len(pts) > 0 {
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color, points.Color = oursColor, oursColor
		fleet.Add(line, points)
		labels, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: fleetLabels(r.Fleets)})
		if err != nil {
			return err
		}
		fleet.Add(labels)
	}

	c := vgsvg.New(vg.Points(1000), vg.Points(360))
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(20), PadTop: vg.Points(10), PadBottom: vg.Points(10), PadLeft: vg.Points(10), PadRight: vg.Points(10)}
	plots := [][]*plot.Plot{{ratios, fleet}}
	canvases := plot.Align(plots, tiles, draw.New(c))
	ratios.Draw(canvases[0][0])
	fleet.Draw(canvases[0][1])
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

func fleetLabels(fs []fleetResult) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = fmt.Sprintf(" %.0f ms", f.WallMs)
	}
	return out
}

// mib formats a peak RSS; 0 means /usr/bin/time was missing.
func mib(kib int64) string {
	if kib == 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}
