package main

import (
	"context"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// stsRoute is how a cold get reaches the sandbox STS: its URL (the
// helper's CHAINGUARD_ISSUER), what else the helper's environment needs,
// and an HTTP client for procbench's own round trips along the same route.
type stsRoute struct {
	name   string // the cache folder's name, and how the report names it
	issuer string
	env    []string
	client *http.Client // a new connection for every request
}

// plainRoute is the sandbox STS itself, plain HTTP on loopback.
func plainRoute(sb *sandbox.Sandbox) stsRoute {
	return stsRoute{name: "cold", issuer: sb.STS.URL(), client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
}

// tlsRoute puts an HTTPS front before the sandbox STS, as Chainguard's STS
// is reached in production. The helper trusts the front through
// SSL_CERT_FILE, a copy of this machine's CA bundle with the front's
// certificate added, so it loads its roots as it would from the real
// bundle (and, as Go does, the certificate folders too unless told
// otherwise). The caller closes the front with the func returned.
func tlsRoute(sb *sandbox.Sandbox, work string) (stsRoute, func(), error) {
	u, err := url.Parse(sb.STS.URL())
	if err != nil {
		return stsRoute{}, nil, err
	}
	front := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(u))
	bundle, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		front.Close()
		return stsRoute{}, nil, fmt.Errorf("the HTTPS cold get copies this machine's CA bundle (Debian package ca-certificates): %w", err)
	}
	bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw})...)
	file := filepath.Join(work, "bundle.pem")
	if err := os.WriteFile(file, bundle, 0o600); err != nil { //nolint:gosec // G703: our own temporary folder; the content is the system bundle
		front.Close()
		return stsRoute{}, nil, err
	}
	tr := front.Client().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	return stsRoute{name: "cold-https", issuer: front.URL, env: []string{"SSL_CERT_FILE=" + file}, client: &http.Client{Transport: tr}}, front.Close, nil
}

// env is the helper's environment for a cold get along r.
func (r stsRoute) helperEnv(h *helperRuns) []string {
	return append(append(h.withCache(r.name), "CHAINGUARD_ISSUER="+r.issuer), r.env...)
}

// roundTrip is one exchange at the sandbox STS from this process, on a
// new connection along r, as a cold get makes it: the round trip a cold
// get cannot avoid, server time (and, over HTTPS, the handshake) included.
func (r stsRoute) roundTrip(h *helperRuns) (float64, error) {
	amb, err := os.ReadFile(h.tokenFile)
	if err != nil {
		return 0, err
	}
	c, err := exchange.New(r.issuer, exchange.WithHTTPClient(r.client))
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	_, err = c.Exchange(context.Background(), string(amb), exchange.Request{Audience: []string{creds.DefaultAudience}, Identity: sandbox.DefaultIdentity})
	return float64(time.Since(t0).Microseconds()) / 1000, err
}

// runCold times cold gets along r, alternately with the STS answering
// after delay and at once, and beside each delayed get one delayed round
// trip from this process. Cold is as when the cached token has run out:
// the cache folder and the lock file are there, the entry is not (each run
// removes it). Each get must make exactly one exchange. bins are the
// helper's staged copies, taken in turn, as the loop takes them. With
// against (the copies of a build to compare with, as -against gives it),
// every delayed get is paired with one of against's, in a random order,
// under the same delay.
func runCold(h *helperRuns, r stsRoute, runs int, delay time.Duration, bins, against []string) (coldResult, error) {
	env := r.helperEnv(h)
	dir := filepath.Join(h.work, r.name)
	if _, err := timeRun(h.get(env)); err != nil { // makes the folder and the lock file
		return coldResult{}, fmt.Errorf("cold get: %w", err)
	}
	coldGet := func(bin string) (float64, error) {
		before := h.sb.STS.Exchanges()
		if err := removeEntries(dir); err != nil {
			return 0, err
		}
		s, err := timeRun(getWith(bin, h.host, env))
		if err != nil {
			return 0, fmt.Errorf("cold get: %w", err)
		}
		if n := h.sb.STS.Exchanges() - before; n != 1 {
			return 0, fmt.Errorf("a cold get made %d exchanges, want 1", n)
		}
		return s.ms, nil
	}
	var delayed, direct, minus, rtt, beyond, pairDiff []float64
	for i := range runs {
		bin := bins[i%len(bins)]
		h.sb.STS.InjectFaults(sandbox.Fault{Delay: delay})
		rt, err := r.roundTrip(h)
		if err != nil {
			return coldResult{}, fmt.Errorf("a round trip from procbench: %w", err)
		}
		rtt = append(rtt, rt)
		delayedGet := func(bin string) (float64, error) {
			h.sb.STS.InjectFaults(sandbox.Fault{Delay: delay})
			ms, err := coldGet(bin)
			if err != nil {
				err = fmt.Errorf("%s: %w", bin, err)
			}
			return ms, err
		}
		var ms, other float64
		if len(against) == 0 {
			ms, err = delayedGet(bin)
		} else if rand.IntN(2) == 0 { //nolint:gosec // G404: an order to run in, not a secret
			// Either may go first: the one after may find more of what
			// they share in the page cache.
			if ms, err = delayedGet(bin); err == nil {
				other, err = delayedGet(against[i%len(against)])
			}
		} else if other, err = delayedGet(against[i%len(against)]); err == nil {
			ms, err = delayedGet(bin)
		}
		if err != nil {
			return coldResult{}, err
		}
		if len(against) > 0 {
			pairDiff = append(pairDiff, ms-other)
		}
		delayed, minus = append(delayed, ms), append(minus, ms-float64(delay.Microseconds())/1000)
		beyond = append(beyond, ms-rt)
		if ms, err = coldGet(bin); err != nil { // and again with no delay
			return coldResult{}, err
		}
		direct = append(direct, ms)
	}
	res := coldResult{Route: r.name, Runs: runs, DelayMs: float64(delay.Microseconds()) / 1000, DelayedMs: median(delayed),
		MinusDelay: spread{Median: median(minus), P10: pct(minus, 10), P90: pct(minus, 90)}, DirectMs: median(direct),
		RoundTripMs: median(rtt), BeyondRoundTrip: spread{Median: median(beyond), P10: pct(beyond, 10), P90: pct(beyond, 90)}}
	if len(against) > 0 {
		res.LessAgainst = &spread{Median: median(pairDiff), P10: pct(pairDiff, 10), P90: pct(pairDiff, 90)}
		fmt.Printf("%s get less against's, paired, each with the STS delayed %.0f ms: median %+.2f ms (p10 %+.2f, p90 %+.2f)\n",
			r.name, res.DelayMs, res.LessAgainst.Median, res.LessAgainst.P10, res.LessAgainst.P90)
	}
	before := 0
	var err error
	res.MaxRSSKiB, err = peakRSS(func() proc {
		before = h.sb.STS.Exchanges()
		if err := removeEntries(dir); err != nil {
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
	fmt.Printf("%s get, %d runs: %.1f ms with the STS delayed %.0f ms (%.1f ms beyond the delay, p90 %.1f; %.1f ms beyond one delayed round trip of %.1f ms from procbench, p90 %.1f); %.1f ms with no delay; peak RSS %s\n",
		r.name, runs, res.DelayedMs, res.DelayMs, res.MinusDelay.Median, res.MinusDelay.P90, res.BeyondRoundTrip.Median, res.RoundTripMs, res.BeyondRoundTrip.P90, res.DirectMs, mib(res.MaxRSSKiB))
	return res, nil
}
