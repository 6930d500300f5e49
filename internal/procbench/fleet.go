package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
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
