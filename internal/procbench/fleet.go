package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// parallel starts every run at once and waits for all; it returns the wall
// time in milliseconds, the failures, and the first failure's error.
func parallel(runs []proc) (ms float64, fails int, first error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	t0 := time.Now()
	for _, r := range runs {
		wg.Go(func() {
			if _, err := timeRun(r); err != nil {
				mu.Lock()
				fails++
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return float64(time.Since(t0).Microseconds()) / 1000, fails, first
}

// runFleets starts, for each size n, n gets at once on a cold cache of its
// own. They must share one exchange: the first takes the entry's lock and
// the others wait for its entry.
func runFleets(h *helperRuns, sizes []int) ([]fleetResult, error) {
	var out []fleetResult
	for i, n := range sizes {
		env := h.withCache(fmt.Sprintf("fleet-%d-%d", i, n))
		runs := make([]proc, n)
		for i := range runs {
			runs[i] = h.get(env)
		}
		before := h.sb.STS.Exchanges()
		ms, fails, first := parallel(runs)
		r := fleetResult{N: n, Exchanges: h.sb.STS.Exchanges() - before, Failures: fails, WallMs: ms}
		fmt.Printf("%d parallel cold gets: %d exchanges, %d failures, %.0f ms wall\n", n, r.Exchanges, r.Failures, r.WallMs)
		if fails > 0 {
			return nil, fmt.Errorf("%d of %d parallel gets failed; the first: %w", fails, n, first)
		}
		if r.Exchanges != 1 {
			return nil, fmt.Errorf("%d parallel cold gets made %d exchanges, want 1", n, r.Exchanges)
		}
		out = append(out, r)
	}
	return out, nil
}

// runKubeletFleet makes calls kubelet-mode calls at once, in
// service-account mode, spread over accounts service accounts, on a cold
// cache: exactly one exchange per account.
func runKubeletFleet(h *helperRuns, accounts, calls int) (kubeletResult, error) {
	tokens := make([]string, accounts)
	for i := range tokens {
		var err error
		if tokens[i], err = h.sb.Issuer.MintServiceAccountToken("bench", fmt.Sprintf("sa-%d", i)); err != nil {
			return kubeletResult{}, err
		}
	}
	env := h.withCache("kubelet-fleet")
	runs := make([]proc, calls)
	for i := range runs {
		runs[i] = h.kubelet(env, tokens[i%accounts])
	}
	before := h.sb.STS.Exchanges()
	ms, fails, first := parallel(runs)
	r := kubeletResult{Calls: calls, Accounts: accounts, Exchanges: h.sb.STS.Exchanges() - before, Failures: fails, WallMs: ms}
	fmt.Printf("%d concurrent kubelet-mode calls for %d service accounts: %d exchanges, %d failures, %.0f ms wall\n",
		calls, accounts, r.Exchanges, r.Failures, r.WallMs)
	if fails > 0 {
		return r, fmt.Errorf("%d of %d kubelet-mode calls failed; the first: %w", fails, calls, first)
	}
	if r.Exchanges != accounts {
		return r, fmt.Errorf("%d kubelet-mode calls for %d service accounts made %d exchanges, want %d", calls, accounts, r.Exchanges, accounts)
	}
	return r, nil
}

// roundTrip is one exchange at the sandbox STS from this process, on a
// new connection, as a cold get makes it: the round trip a cold get cannot
// avoid, server time included.
func roundTrip(h *helperRuns) (float64, error) {
	amb, err := os.ReadFile(h.tokenFile)
	if err != nil {
		return 0, err
	}
	c, err := exchange.New(h.sb.STS.URL(), exchange.WithHTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}))
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	_, err = c.Exchange(context.Background(), string(amb), exchange.Request{Audience: []string{creds.DefaultAudience}, Identity: sandbox.DefaultIdentity})
	return float64(time.Since(t0).Microseconds()) / 1000, err
}

// runCold times cold gets, alternately with the STS answering after delay
// and at once, and beside each delayed get one delayed round trip from
// this process. Cold is as when the cached token has run out: the cache
// folder and the lock file are there, the entry is not (each run removes
// it). Each get must make exactly one exchange.
func runCold(h *helperRuns, runs int, delay time.Duration) (coldResult, error) {
	env := h.withCache("cold")
	if _, err := timeRun(h.get(env)); err != nil { // makes the folder and the lock file
		return coldResult{}, fmt.Errorf("cold get: %w", err)
	}
	var delayed, direct, minus, rtt, beyond []float64
	for range runs {
		h.sb.STS.InjectFaults(sandbox.Fault{Delay: delay})
		rt, err := roundTrip(h)
		if err != nil {
			return coldResult{}, fmt.Errorf("a round trip from procbench: %w", err)
		}
		rtt = append(rtt, rt)
		for _, d := range []time.Duration{delay, 0} {
			if d > 0 {
				h.sb.STS.InjectFaults(sandbox.Fault{Delay: d})
			}
			before := h.sb.STS.Exchanges()
			if err := removeEntries(filepath.Join(h.work, "cold")); err != nil {
				return coldResult{}, err
			}
			s, err := timeRun(h.get(env))
			if err != nil {
				return coldResult{}, fmt.Errorf("cold get: %w", err)
			}
			if n := h.sb.STS.Exchanges() - before; n != 1 {
				return coldResult{}, fmt.Errorf("a cold get made %d exchanges, want 1", n)
			}
			if d > 0 {
				delayed, minus = append(delayed, s.ms), append(minus, s.ms-float64(d.Microseconds())/1000)
				beyond = append(beyond, s.ms-rt)
			} else {
				direct = append(direct, s.ms)
			}
		}
	}
	r := coldResult{Runs: runs, DelayMs: float64(delay.Microseconds()) / 1000, DelayedMs: median(delayed),
		MinusDelay: spread{Median: median(minus), P10: pct(minus, 10), P90: pct(minus, 90)}, DirectMs: median(direct),
		RoundTripMs: median(rtt), BeyondRoundTrip: spread{Median: median(beyond), P10: pct(beyond, 10), P90: pct(beyond, 90)}}
	n, before := 0, 0
	var err error
	r.MaxRSSKiB, err = peakRSS(func() proc {
		n, before = n+1, h.sb.STS.Exchanges()
		if err := removeEntries(filepath.Join(h.work, "cold")); err != nil {
			panic(err) // only our own temporary folder
		}
		return h.get(env)
	}, rssRuns, func() error {
		if got := h.sb.STS.Exchanges() - before; got != 1 {
			return fmt.Errorf("a cold get made %d exchanges, want 1", got)
		}
		return nil
	})
	if err != nil {
		return coldResult{}, fmt.Errorf("cold get under %s: %w", timeBin, err)
	}
	fmt.Printf("cold get, %d runs: %.1f ms with the STS delayed %.0f ms (%.1f ms beyond the delay, p90 %.1f; %.1f ms beyond one delayed round trip of %.1f ms from procbench, p90 %.1f); %.1f ms with no delay; peak RSS %s\n",
		runs, r.DelayedMs, r.DelayMs, r.MinusDelay.Median, r.MinusDelay.P90, r.BeyondRoundTrip.Median, r.RoundTripMs, r.BeyondRoundTrip.P90, r.DirectMs, mib(r.MaxRSSKiB))
	return r, nil
}

// removeEntries removes the cache entries in dir, leaving the lock files.
func removeEntries(dir string) error {
	entries, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Remove(e); err != nil {
			return err
		}
	}
	return nil
}
