package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/dockerconfig"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

const (
	binaryName = "docker-credential-cgr"
	needsCfg   = "needs settings that load (see the config check)"
	debugFix   = "run the failing command again with CHAINGUARD_DEBUG=true for more detail"
)

// checkConfig loads the settings as get does, and refuses what get would.
func checkConfig(st *state) result {
	st.cfg, st.cfgErr = creds.LoadConfig(st.getenv)
	if st.cfgErr != nil {
		return fail(st.cfgErr.Error(), "fix or unset the setting, or fix or remove the file, that the message names; get fails the same way")
	}
	h, err := creds.New(st.cfg)
	if err != nil {
		st.cfgErr = err
		return fail(err.Error(), "fix or unset the setting that the message names; get fails the same way")
	}
	served, _ := h.List()
	for host := range served {
		st.hosts = append(st.hosts, host)
	}
	slices.Sort(st.hosts)

	file := "no config file (neither XDG_CONFIG_HOME nor HOME is set)"
	if path := creds.ConfigPath(st.getenv); path != "" {
		file = "no config file at " + quote(path)
		if _, err := os.Stat(path); err == nil {
			file = "the config file " + quote(path)
		}
	}
	// The issuer is the one exchange.New accepted: no user info, no query.
	if c, err := exchange.New(st.cfg.Issuer); err == nil {
		st.issuer = c.Issuer()
	}
	return ok("settings from the environment, then "+file+", then the defaults",
		"STS: "+quote(st.issuer),
		"registries served: "+strings.Join(st.cfg.Registries, ", "),
		"audience of registry tokens: "+quote(st.cfg.Audience))
}

// checkPath says which docker-credential-cgr docker runs.
func checkPath(st *state) result {
	o := dockerconfig.FindOnPath(st.getenv("PATH"), st.self)
	var details []string
	for _, p := range o.Shadowed {
		details = append(details, "also on PATH, later, so docker never runs it: "+quote(p))
	}
	me := quote(st.self)
	switch {
	case o.Path == "":
		return fail("no "+binaryName+" on PATH: docker runs the helper by that name, and would find none",
			"put this binary ("+me+") on PATH under that name, e.g. ln -s "+me+" /usr/local/bin/"+binaryName, details...)
	case o.Self:
		return ok(quote(o.Path)+" is this binary: docker runs it for every registry that credHelpers sends to \"cgr\"", details...)
	case o.Chainctl:
		return fail("the "+binaryName+" first on PATH, "+quote(o.Path)+", is chainctl's link (to "+quote(o.Target)+"), not this binary ("+me+"): docker runs chainctl, with chainctl's own login and none of these settings",
			"put this binary's folder ("+quote(filepath.Dir(st.self))+") before "+quote(filepath.Dir(o.Path))+" on PATH, or remove the link; see the README's section on coexisting with chainctl", details...)
	}
	return fail("the "+binaryName+" first on PATH, "+quote(o.Path)+", is not this binary ("+me+"): docker runs that one",
		"put this binary's folder ("+quote(filepath.Dir(st.self))+") earlier on PATH, or remove the other", details...)
}

// checkDockerConfig checks that docker's config sends each served host to
// this helper, with configure-docker's own dry run.
func checkDockerConfig(st *state) result {
	if st.cfgErr != nil {
		return skip(needsCfg)
	}
	path, err := dockerconfig.Path(st.getenv)
	if err != nil {
		return fail(err.Error(), "point DOCKER_CONFIG at the folder of docker's config.json, or unset it")
	}
	if len(st.hosts) == 0 {
		return warn("the helper serves only wildcards ("+strings.Join(st.cfg.Registries, ", ")+"), and docker matches credHelpers by exact host, so there is nothing to check",
			binaryName+" configure-docker --registry HOST, for each host you pull from")
	}
	// docker reads through a link; configure-docker will not write
	// through one, so its dry run is given the file the link names.
	target := path
	if t, err := filepath.EvalSymlinks(path); err == nil {
		target = t
	}
	edit, err := dockerconfig.Configure(target, st.hosts, dockerconfig.Options{DryRun: true})
	if err != nil {
		fix := "fix the file as the message says; " + binaryName + " configure-docker --dry-run then shows what it would add"
		if errors.Is(err, dockerconfig.ErrOtherHelper) {
			fix = binaryName + " configure-docker --force replaces that entry; or remove it by hand"
		}
		return fail(err.Error(), fix)
	}
	if edit.Created {
		return fail("there is no docker config at "+quote(path)+", so docker never runs this helper",
			binaryName+" configure-docker")
	}
	if len(edit.Added) > 0 {
		summary := quote(path) + " does not send " + strings.Join(edit.Added, ", ") + " to " + binaryName + " (no credHelpers entry)"
		if edit.CredsStore != "" {
			summary += ", so docker asks its credsStore, " + quote(edit.CredsStore) + ", for them instead"
		} else {
			summary += ", so docker pulls from them with whatever auths holds, or anonymously"
		}
		// configure-docker's note on credsStore speaks of the entries it
		// would add; the summary has said what it means without them.
		notes := slices.DeleteFunc(slices.Clone(edit.Warnings), func(w string) bool { return strings.HasPrefix(w, "credsStore ") })
		return fail(summary, binaryName+" configure-docker", notes...)
	}
	summary := quote(path) + " sends " + strings.Join(st.hosts, ", ") + " to " + binaryName
	if len(edit.StaleAuths) > 0 {
		stale := make([]string, 0, len(edit.StaleAuths))
		for _, key := range edit.StaleAuths {
			stale = append(stale, quote(key))
		}
		return warn(summary+", but auths also has credentials for "+strings.Join(stale, ", ")+" (see below)",
			"delete those auths entries (likely from an earlier docker login) if they are stale", edit.Warnings...)
	}
	return ok(summary, edit.Warnings...)
}

// checkAmbient says where the ambient token was looked for and found.
func checkAmbient(st *state) result {
	if st.cfgErr != nil {
		return skip(needsCfg)
	}
	srcs := creds.AmbientSources(st.cfg)
	details := []string{"looked at, in order:"}
	used := -1
	for i, s := range srcs {
		line := fmt.Sprintf("  %d. %s: ", i+1, s.Name)
		switch {
		case s.Present && used < 0:
			used = i
			line += "here, used"
		case s.Present:
			line += "here too, not used"
		default:
			line += "not here (" + s.Missing + ")"
		}
		details = append(details, line)
	}
	if used < 0 {
		return fail(creds.ErrNoAmbientToken.Error(), fixFor(creds.ErrNoAmbientToken), details...)
	}
	if srcs[used].Remote && st.opts.offline {
		return warn(srcs[used].Name+" is available, but --offline asks it for no token, so its claims are not checked",
			"run doctor without --offline", details...)
	}
	ctx, cancel := context.WithTimeout(st.ctx, st.cfg.Timeout)
	defer cancel()
	amb, err := creds.FindAmbientToken(ctx, st.cfg, &http.Client{})
	if err != nil {
		return fail(err.Error(), fixFor(err), details...)
	}
	st.amb = &amb
	return ok("a token from "+amb.Source, details...)
}

// checkClaims shows the ambient token's claims, unverified and so quoted,
// and checks them as get does before an exchange.
func checkClaims(st *state) result {
	if st.amb == nil {
		return skip("no ambient token to read")
	}
	a := st.amb
	auds := make([]string, 0, len(a.Audience))
	for _, aud := range a.Audience {
		auds = append(auds, quote(aud))
	}
	exp := "none"
	if !a.Expiry.IsZero() {
		exp = until(a.Expiry, st.now)
	}
	details := []string{
		"iss: " + quote(a.Issuer),
		"sub: " + quote(a.Subject),
		"aud: " + strings.Join(auds, ", "),
		"exp: " + exp,
		"(read without verifying the signature: the STS verifies it)",
	}
	if err := a.Check(st.now); err != nil {
		return fail(err.Error(), fixFor(err), details...)
	}
	st.usable = true
	return ok("audience "+creds.EnforceAudience+" fits; "+until(a.Expiry, st.now), details...)
}

// githubIssuer is the iss of GitHub Actions' OIDC tokens on github.com.
const githubIssuer = "https://token.actions.githubusercontent.com"

// checkIdentity says which identity is asked for, and prints the chainctl
// commands that create one matching the ambient token.
func checkIdentity(st *state) result {
	if st.cfgErr != nil {
		return skip(needsCfg)
	}
	var details []string
	if st.amb != nil {
		details = identityCommands(*st.amb)
	}
	id := st.cfg.Identity
	if id == "" {
		which := "the ambient token (doctor prints the command once it finds one)"
		if st.amb != nil {
			which = "this token (below)"
		}
		return warn("no identity is set (CHAINGUARD_IDENTITY, or the config file's identity): the exchange asks the STS for the token's own identity, which a workload token rarely has",
			"create an identity that trusts "+which+" and set CHAINGUARD_IDENTITY to its id, or save it with "+binaryName+" configure-docker --identity ID", details...)
	}
	from := "the config file's identity"
	if st.getenv("CHAINGUARD_IDENTITY") != "" {
		from = "CHAINGUARD_IDENTITY"
	}
	if err := exchange.CheckIdentity(id); err != nil {
		return fail(from+": "+err.Error(), "set it to the identity's id, as chainctl iam identities list shows it", details...)
	}
	summary := from + " is " + quote(id) + "; whether the STS knows it and lets this token assume it shows in the exchange"
	if st.opts.offline {
		summary += " (not with --offline)"
	}
	return ok(summary, details...)
}

// identityCommands are the chainctl commands that create an identity
// matching amb, with notes on when each applies.
func identityCommands(amb creds.AmbientToken) []string {
	out := []string{"an identity that lets this token pull is created with:", "  " + creds.IdentityCommand(amb, "")}
	if amb.Issuer == githubIssuer || amb.Source == "GitHub Actions OIDC" {
		// GitHub's changelog of 2026-04-23, "Immutable subject claims for
		// GitHub Actions OIDC tokens"
		// (https://github.blog/changelog/2026-04-23-immutable-subject-claims-for-github-actions-oidc-tokens):
		// repositories created, renamed or transferred after 2026-06-18,
		// and those that opt in, get owner and repository ids appended
		// to the names in sub, e.g. repo:octocat-123456/my-repo-456789:
		// ref:refs/heads/main instead of repo:octocat/my-repo:ref:... An
		// identity written for one form does not match the other.
		return append(out,
			"GitHub Actions: the pattern above is this token's subject exactly. Since 2026-06-18 GitHub issues",
			"  repo:OWNER-<owner id>/REPO-<repository id>:... (ids from the token's repository_owner_id and repository_id claims)",
			"  for repositories created, renamed or transferred since, and for those opted in; older ones keep repo:OWNER/REPO:...",
			"  A pattern written for one form does not match the other: after a rename, transfer or opt-in, recreate the identity.")
	}
	keys, where := `"$(cat jwks.json)"`, "jwks.json holding the issuer's public keys (its JWKS)"
	if strings.HasPrefix(amb.Subject, "system:serviceaccount:") {
		keys, where = `"$(kubectl get --raw /openid/v1/jwks)"`, "run against the cluster that issued the token"
	}
	return append(out,
		"if the STS cannot fetch the issuer's keys (a cluster whose issuer is not public, such as kind), give them instead ("+where+"):",
		"  "+creds.IdentityCommand(amb, keys),
		"  caveat: such an identity must be updated whenever the cluster rotates its signing keys (exchanges then fail with \"unable to verify\"), and lasts 30 days at most",
		"then set CHAINGUARD_IDENTITY to the id it prints (or save it with "+binaryName+" configure-docker --identity ID)")
}

// checkCache describes the token cache folder, never an entry's content.
func checkCache(st *state) result {
	if st.cfgErr != nil {
		return skip(needsCfg)
	}
	r := creds.InspectCache(st.cfg, st.now)
	st.cache = &r
	switch {
	case r.Off != "":
		return ok("off: " + r.Off + "; every get exchanges")
	case r.Problem != "":
		return warn("cannot be used: "+r.Problem+"; every get exchanges (a pull still works)",
			"point CHAINGUARD_CACHE_DIR at a folder of your own, or make this one yours and private (chmod 700)", "folder: "+quote(r.Dir))
	case !r.Exists:
		return ok(quote(r.Dir) + " is not made yet; the first get makes it (mode 0700)")
	}
	owner := fmt.Sprintf("user id %d", r.Owner)
	if r.Owner == os.Geteuid() {
		owner += " (this user)"
	}
	summary := quote(r.Dir) + ": no cached token"
	if r.Entries > 0 {
		summary = fmt.Sprintf("%s: %s, %s valid", quote(r.Dir), plural(r.Entries, "cached token"), countWord(r.Valid))
	}
	if r.Valid > 0 {
		summary += ", the latest " + until(r.ValidUntil, st.now)
	}
	details := []string{fmt.Sprintf("mode %04o, owned by %s", r.Mode, owner)}
	if r.Ignored > 0 {
		details = append(details, fmt.Sprintf("%d unusable (corrupt, or open to others): get ignores them, and the next exchange for each replaces it", r.Ignored))
	}
	if r.Truncated {
		details = append(details, "the folder holds more files than were read; the counts cover the first ones")
	}
	return ok(summary, details...)
}

// Failures shown, and how recent the last must be to be a warning: an
// old failure is history, not the problem at hand.
const (
	failuresShown = 5
	recentFailure = 24 * time.Hour
)

// checkFailures shows the last failures get and kubelet recorded. docker
// throws the helper's error away, so this is often the only place the
// reason for an "unauthorized" pull is written down.
func checkFailures(st *state) result {
	switch {
	case st.cfgErr != nil || st.cache == nil:
		return skip(needsCfg)
	case st.cache.Off != "":
		return skip("no record: it is kept in the cache folder, and the cache is off")
	case !st.cache.Exists:
		return ok("none recorded (the cache folder, where the record is kept, is not made yet)")
	case st.cache.Problem != "":
		return skip("no record: the cache folder, where it is kept, cannot be used (see the cache check)")
	}
	path, failures, err := creds.RecentFailures(st.cfg, failuresShown)
	if err != nil {
		return warn("cannot read the failure record: "+err.Error(), "make the cache folder and its files private to this user, as the cache check says")
	}
	if len(failures) == 0 {
		return ok("none recorded in " + quote(path))
	}
	details := make([]string, 0, len(failures)+1)
	details = append(details, "newest last, from "+quote(path)+":")
	for _, f := range failures {
		details = append(details, fmt.Sprintf("%s %s %s %s: %s", f.Time.UTC().Format(time.RFC3339), plain(f.Command, 32), plain(f.Registry, 256), plain(f.Class, 64), plain(f.Message, 1000)))
	}
	last := failures[len(failures)-1]
	ago := st.now.Sub(last.Time).Round(time.Second)
	summary := fmt.Sprintf("the last recorded failure was %s ago: %s for %s, %s", ago, plain(last.Command, 32), quote(last.Registry), plain(last.Class, 64))
	if ago > recentFailure {
		return ok(summary+"; none since", details...)
	}
	return warn(summary, "the message says what was wrong; the checks above say whether it still is", details...)
}

// plain shows s as it is when it is one line of printable text within
// limit runes, as the helper writes it; else quoted and capped, so an
// edited record cannot forge a line or send escapes to the terminal.
func plain(s string, limit int) string {
	if s != "" && utf8.RuneCountInString(s) <= limit && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return s
	}
	return logsafe.Quote(s, limit)
}

func countWord(n int) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprint(n)
}

// checkExchange exchanges the ambient token at the STS, with the cache off
// so that it really does, and reads the issued token's claims.
func checkExchange(st *state) result {
	switch {
	case st.opts.offline:
		return skip("not tried (--offline)")
	case st.cfgErr != nil:
		return skip(needsCfg)
	case !st.usable:
		return skip("no usable ambient token (see above)")
	}
	cfg := st.cfg
	cfg.NoCache = true
	h, err := creds.New(cfg)
	if err != nil {
		return fail(err.Error(), fixFor(err))
	}
	host := probeHost(st)
	_, secret, err := h.GetContext(st.ctx, host)
	if err != nil {
		return fail(logsafe.Redact(err.Error(), st.amb.Raw()), fixFor(err))
	}
	c, err := exchange.ParseClaims(secret)
	if err != nil { // Get checked it already; this is a bug
		return fail("the STS's token cannot be read: "+err.Error(), debugFix)
	}
	st.regTok = secret
	auds := make([]string, 0, len(c.Audience))
	for _, a := range c.Audience {
		auds = append(auds, quote(a))
	}
	details := []string{
		"identity (sub): " + quote(c.Subject),
		"aud: " + strings.Join(auds, ", "),
		"exp: " + until(c.Expiry, st.now),
	}
	if !slices.Contains(c.Audience, st.cfg.Audience) {
		return fail("the STS issued a registry token, but not for the audience asked for ("+quote(st.cfg.Audience)+"), so the registry will refuse it",
			"check CHAINGUARD_AUDIENCE; unset it for cgr.dev", details...)
	}
	return ok("the STS at "+quote(st.issuer)+" issued a registry token; "+until(c.Expiry, st.now), details...)
}

// probeHost is a host the helper serves, to ask for a token for: the
// first served host, else one under the first wildcard.
func probeHost(st *state) string {
	if len(st.hosts) > 0 {
		return st.hosts[0]
	}
	return "registry." + strings.TrimPrefix(st.cfg.Registries[0], "*.")
}

// fixFor is the fix for a failure of one of pkg/creds' classes. The
// messages carry theirs too; this is the one line to act on.
func fixFor(err error) string {
	var se *exchange.StatusError
	switch {
	case errors.Is(err, creds.ErrNoAmbientToken):
		return "set CHAINGUARD_IDENTITY_TOKEN to a token or a token file; or project a service-account token with audience " + creds.EnforceAudience + " to " + creds.DefaultTokenPath + "; or, in GitHub Actions, give the job permissions: id-token: write"
	case errors.Is(err, creds.ErrBadAmbientToken):
		return "point CHAINGUARD_IDENTITY_TOKEN (or the token file) at the bare OIDC token, as the message says"
	case errors.Is(err, creds.ErrTokenExpired):
		return "check that the token path is the one the kubelet refreshes (a projected token); otherwise mint a new token"
	case errors.Is(err, creds.ErrWrongAudience):
		return "request or project the token with audience " + creds.EnforceAudience
	case errors.Is(err, creds.ErrIdentityRejected) && errors.As(err, &se) && se.HTTPStatus == http.StatusNotFound:
		return "set CHAINGUARD_IDENTITY to the id of an existing identity (chainctl iam identities list), or create one (see the identity check)"
	case errors.Is(err, creds.ErrIdentityRejected):
		return "create an identity that trusts this token with the command the identity check prints, and set CHAINGUARD_IDENTITY to its id"
	case errors.Is(err, creds.ErrSTSUnreachable):
		return "check CHAINGUARD_ISSUER, and the network to it (proxy, firewall, DNS); or try again later"
	case errors.Is(err, creds.ErrSTSFailed):
		return "try again later, and report it if it persists"
	case errors.Is(err, creds.ErrIssuerMisconfigured):
		return "set CHAINGUARD_ISSUER to the STS base URL (" + exchange.DefaultIssuer + "), or unset it"
	case errors.Is(err, creds.ErrClockSkew):
		return "fix the clock (NTP) of this machine, or of the token's issuer"
	case errors.Is(err, creds.ErrBadIdentity):
		return "set CHAINGUARD_IDENTITY to the identity's id, as chainctl iam identities list shows it"
	}
	return debugFix
}
