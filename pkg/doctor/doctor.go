// Package doctor is the doctor subcommand: it explains the helper's setup
// one check at a time (which binary docker runs, docker's config, the
// ambient token and its claims, the identity, the cache, the last
// failures, and unless offline the exchange itself), each with the fix
// when something is wrong. It never prints a token: the ambient token's
// claims are shown quoted and capped, and no token's value at all.
// Nothing on the credential path (get, kubelet) uses it.
package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

const usage = `usage: docker-credential-cgr doctor [--offline] [--registry-check] [--json]

Explains the setup, one check per line, in order: the settings, which
docker-credential-cgr docker runs, docker's config, the ambient token and
where it was looked for, its claims, the identity (and the chainctl command
that would match the token), the token cache, the last failures the helper
recorded, and unless --offline an exchange at the STS. Every failed check
(✘) is followed by its fix. No token is ever printed.

Exit status: 0 no check failed (warnings, !, allowed), 1 a check failed,
2 bad usage.

flags:
`

// status is a check's outcome. The values are part of the --json output.
type status string

const (
	statusOK   status = "ok"
	statusWarn status = "warn"
	statusFail status = "fail"
	statusSkip status = "skip"
)

// mark is the status's sign in the human output.
func (s status) mark() string {
	switch s {
	case statusOK:
		return "✔"
	case statusWarn:
		return "!"
	case statusFail:
		return "✘"
	}
	return "-"
}

// result is what one check found: one line, with the fix for a failure or
// warning and any further detail. Its JSON is the --json shape of a check
// (docs/reference.md#doctor).
type result struct {
	Name    string   `json:"name"`
	Status  status   `json:"status"`
	Summary string   `json:"summary"`
	Fix     string   `json:"fix,omitempty"`
	Details []string `json:"details,omitempty"`
}

func ok(summary string, details ...string) result {
	return result{Status: statusOK, Summary: summary, Details: details}
}

func warn(summary, fix string, details ...string) result {
	return result{Status: statusWarn, Summary: summary, Fix: fix, Details: details}
}

func fail(summary, fix string, details ...string) result {
	return result{Status: statusFail, Summary: summary, Fix: fix, Details: details}
}

func skip(summary string) result { return result{Status: statusSkip, Summary: summary} }

// check is one step of doctor. run may read what earlier checks left in
// the state (the config, the ambient token) and leave more for later ones.
type check struct {
	name string
	run  func(*state) result
}

// checks are run in this order; later ones build on earlier ones.
var checks = []check{
	{"config", checkConfig},
	{"path", checkPath},
	{"docker-config", checkDockerConfig},
	{"ambient-token", checkAmbient},
	{"token-claims", checkClaims},
	{"identity", checkIdentity},
	{"cache", checkCache},
	{"failures", checkFailures},
	{"exchange", checkExchange},
	{"registry", checkRegistries},
}

// options are doctor's flags.
type options struct {
	offline, registryCheck bool
}

// state is what the checks share: the inputs, and what earlier checks
// found. registryToken is the exchanged token, kept only for the registry
// check and never printed.
type state struct {
	ctx    context.Context
	getenv func(string) string
	opts   options
	now    time.Time
	self   string // this binary's path

	cfg    creds.Config
	cfgErr error
	issuer string              // the STS, as the exchange client spells it
	amb    *creds.AmbientToken // the ambient token found, if any
	usable bool                // amb passed its pre-flight check
	hosts  []string            // the served registries that are hosts
	cache  *creds.CacheReport  // what the cache check found
	regTok string              // the registry token the exchange returned
}

// report is the --json output.
type report struct {
	OK       bool     `json:"ok"`
	Failed   int      `json:"failed"`
	Warnings int      `json:"warnings"`
	Checks   []result `json:"checks"`
}

// Run is the doctor subcommand. getenv is usually os.Getenv; PATH,
// DOCKER_CONFIG and every setting are read through it. The report goes to
// stdout (so does --help); only a usage error goes to stderr. It returns
// the exit status: 0 when no check failed, 1 when one did, 2 on bad usage.
func Run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var opts options
	fs.BoolVar(&opts.offline, "offline", false, "make no network call: no exchange at the STS, no registry request, no GitHub Actions token request")
	fs.BoolVar(&opts.registryCheck, "registry-check", false, "also send the exchanged token to each served registry host (GET /v2/ through its token realm)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object (see docs/reference.md#doctor) instead of lines")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = io.WriteString(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		_, _ = fmt.Fprintf(stderr, "doctor: %s; see --help\n", logsafe.FlagError(err, args))
		return 2
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "doctor: unexpected argument %s; see --help\n", logsafe.Describe(fs.Arg(0)))
		return 2
	}
	if opts.offline && opts.registryCheck {
		_, _ = fmt.Fprintln(stderr, "doctor: --registry-check needs the network, and --offline forbids it; give one of them")
		return 2
	}
	self, _ := os.Executable()
	st := &state{ctx: context.Background(), getenv: getenv, opts: opts, now: time.Now(), self: self}
	rep := run(st)
	if *asJSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "doctor: %v\n", err)
			return 1
		}
		_, _ = fmt.Fprintf(stdout, "%s\n", b)
	} else {
		_, _ = io.WriteString(stdout, human(rep))
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// run runs every check in order and sums them up.
func run(st *state) report {
	rep := report{Checks: make([]result, 0, len(checks))}
	for _, c := range checks {
		r := c.run(st)
		r.Name = c.name
		switch r.Status {
		case statusFail:
			rep.Failed++
		case statusWarn:
			rep.Warnings++
		}
		rep.Checks = append(rep.Checks, r)
	}
	rep.OK = rep.Failed == 0
	return rep
}

// human lays the report out for a person: a line per check, its fix on the
// next line, then its details, and a last line that sums up.
func human(rep report) string {
	var b strings.Builder
	for _, r := range rep.Checks {
		fmt.Fprintf(&b, "%s %s: %s\n", r.Status.mark(), r.Name, r.Summary)
		if r.Fix != "" {
			fmt.Fprintf(&b, "    fix: %s\n", r.Fix)
		}
		for _, d := range r.Details {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	switch {
	case rep.Failed > 0:
		fmt.Fprintf(&b, "doctor: %s failed, %s\n", plural(rep.Failed, "check"), plural(rep.Warnings, "warning"))
	case rep.Warnings > 0:
		fmt.Fprintf(&b, "doctor: no check failed, %s\n", plural(rep.Warnings, "warning"))
	default:
		b.WriteString("doctor: every check passed\n")
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// quote shows a value that came from outside (a claim, a path, a server's
// words) on one line, capped.
func quote(s string) string { return logsafe.Quote(s, logsafe.DefaultLimit) }

// until says how long is left until t, and when that is.
func until(t, now time.Time) string {
	at := t.UTC().Format(time.RFC3339)
	if d := t.Sub(now); d > 0 {
		return fmt.Sprintf("valid for %s more (until %s)", d.Round(time.Second), at)
	}
	return fmt.Sprintf("expired %s ago (at %s)", now.Sub(t).Round(time.Second), at)
}
