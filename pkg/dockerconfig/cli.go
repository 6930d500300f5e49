package dockerconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// binaryName is the name docker runs for HelperName.
const binaryName = "docker-credential-" + HelperName

const usage = `usage: ` + binaryName + ` configure-docker [flags]

Points docker (and crane, ko, skopeo, podman) at this helper: adds a
"credHelpers" entry "<registry>": "` + HelperName + `" to $DOCKER_CONFIG/config.json, or
~/.docker/config.json, for each registry the helper serves (CHAINGUARD_REGISTRY,
else the registries in its config file, else cgr.dev) and each --registry.
Every other key in the file is kept as it was; a second run changes nothing.
--identity, --identity-token and --issuer are saved to the helper's own config
file, $XDG_CONFIG_HOME/` + binaryName + `/config.json (else under ~/.config).

Exit status: 0 done (warnings go to stderr), 1 refused or failed (the message
says what, if anything, was changed), 2 bad usage.

flags:
`

// Run is the configure-docker subcommand. It checks both files it may
// change (docker's config and the helper's) before writing either, then
// writes the helper's first, so docker is never pointed at a half-configured
// helper. Results and --help go to stdout; warnings and errors to stderr.
// getenv is usually os.Getenv; PATH is read through it too.
func Run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("configure-docker", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported as one line below
	var extra registryList
	fs.Var(&extra, "registry", "another registry host to send to this helper, also added to the helper's own registries if it does not serve it yet; repeat it, or separate hosts with commas")
	dryRun := fs.Bool("dry-run", false, "print the change (the credHelpers object before and after, and the settings) without writing anything")
	force := fs.Bool("force", false, "replace a credHelpers entry that sends one of the registries to another helper (without it, such an entry stops the run)")
	identity := fs.String("identity", "", "save the id of the identity to assume (as CHAINGUARD_IDENTITY)")
	tokenPath := fs.String("identity-token", "", "save the path of the file holding the ambient token (as CHAINGUARD_IDENTITY_TOKEN); a token itself is refused")
	issuer := fs.String("issuer", "", "save the STS base URL (as CHAINGUARD_ISSUER; default "+exchange.DefaultIssuer+")")
	fail := func(code int, format string, a ...any) int {
		_, _ = fmt.Fprintf(stderr, "configure-docker: "+format+"\n", a...)
		return code
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = io.WriteString(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		return fail(2, "%s; see --help", logsafe.FlagError(err, args))
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %s; see --help", logsafe.Describe(fs.Arg(0)))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var s settings
	if given["identity"] {
		if s.identity = *identity; s.identity == "" {
			return fail(2, "--identity is empty; give the id of the identity to assume")
		}
		if logsafe.MightBeSecret(s.identity) {
			return fail(2, "--identity holds a token, not an identity id, which would be saved in the helper's config file; give the id of the identity to assume (chainctl iam identities list)")
		}
	}
	if given["identity-token"] {
		p, err := tokenFile(*tokenPath)
		if err != nil {
			return fail(2, "%v", err)
		}
		s.identityToken = p
	}
	if given["issuer"] {
		if *issuer == "" {
			return fail(2, "--issuer is empty; give the STS base URL, such as %s", exchange.DefaultIssuer)
		}
		c, err := exchange.New(*issuer)
		if err != nil {
			return fail(2, "--issuer: %v", err)
		}
		s.issuer = c.Issuer()
	}

	cfg, err := creds.LoadConfig(getenv)
	if err != nil {
		return fail(1, "cannot tell which registries the helper serves: %v", err)
	}
	hosts, warnings := servedHosts(cfg.Registries, extra)
	if len(hosts) == 0 {
		return fail(1, "the helper serves only wildcards (%s), and docker matches credHelpers by exact host: give --registry for each host you pull from", strings.Join(cfg.Registries, ", "))
	}
	for _, r := range extra {
		if !creds.Serves(cfg.Registries, r) {
			s.registries = append(s.registries, r)
		}
	}
	if len(s.registries) > 0 && getenv("CHAINGUARD_REGISTRY") != "" {
		warnings = append(warnings, fmt.Sprintf("CHAINGUARD_REGISTRY is set and wins over the config file's registries: the helper serves %s only while CHAINGUARD_REGISTRY lists it too", strings.Join(s.registries, ", ")))
	}

	dockerPath, err := Path(getenv)
	if err != nil {
		return fail(1, "%v", err)
	}
	settingsPath := ""
	if !s.empty() {
		if settingsPath = creds.ConfigPath(getenv); settingsPath == "" {
			return fail(1, "cannot tell where the helper's config file is: set HOME or XDG_CONFIG_HOME")
		}
	}

	// Both files are checked before either is written.
	edit, err := Configure(dockerPath, hosts, Options{Force: *force, DryRun: true})
	if err != nil {
		return fail(1, "%v", err)
	}
	var sEdit fileEdit
	var changes []settingChange
	if settingsPath != "" {
		if sEdit, changes, err = saveSettings(settingsPath, s, true); err != nil {
			return fail(1, "%v", err)
		}
	}
	if !*dryRun {
		if settingsPath != "" {
			if sEdit, changes, err = saveSettings(settingsPath, s, false); err != nil {
				return fail(1, "%v", err)
			}
		}
		if edit, err = Configure(dockerPath, hosts, Options{Force: *force}); err != nil {
			if sEdit.changed() {
				return fail(1, "%v (the settings were saved to %s)", err, quote(settingsPath))
			}
			return fail(1, "%v", err)
		}
	}

	var out strings.Builder
	if *dryRun {
		out.WriteString("configure-docker: dry run, nothing was written\n")
	}
	report(&out, edit, hosts, *dryRun)
	if settingsPath != "" {
		reportSettings(&out, sEdit, changes, *dryRun)
	}
	_, _ = io.WriteString(stdout, out.String())
	self, _ := os.Executable()
	if w := pathWarning(getenv("PATH"), self); w != "" {
		warnings = append(warnings, w)
	}
	for _, w := range append(warnings, edit.Warnings...) {
		_, _ = fmt.Fprintf(stderr, "configure-docker: warning: %s\n", w)
	}
	return 0
}

// registryList is the repeatable --registry flag: hosts, each checked with
// the helper's own rules.
type registryList []string

func (r *registryList) String() string { return strings.Join(*r, ",") }

func (r *registryList) Set(v string) error {
	regs, err := creds.ParseRegistries(v)
	if err != nil {
		return err
	}
	if len(regs) == 0 {
		return errors.New("names no registry host")
	}
	for _, h := range regs {
		if strings.HasPrefix(h, "*") {
			return fmt.Errorf("%s is a wildcard, but docker matches credHelpers by exact host: name each host", h)
		}
	}
	*r = append(*r, regs...)
	return nil
}

// servedHosts is what goes into credHelpers: the served registries that are
// hosts, then the extras. A wildcard cannot be a credHelpers key; one the
// user set (not the default *.cgr.dev) that no host here falls under is
// noted.
func servedHosts(served, extra []string) ([]string, []string) {
	var hosts, notes []string
	for _, p := range append(slices.Clone(served), extra...) {
		if !strings.HasPrefix(p, "*") && !slices.Contains(hosts, p) {
			hosts = append(hosts, p)
		}
	}
	defaults := strings.Split(creds.DefaultRegistry, ",")
	for _, p := range served {
		if !strings.HasPrefix(p, "*") || slices.Contains(defaults, p) || slices.ContainsFunc(hosts, func(h string) bool { return creds.Serves([]string{p}, h) }) {
			continue
		}
		notes = append(notes, fmt.Sprintf("the helper serves %s, but docker matches credHelpers by exact host, so no entry is written for it: give --registry for each host under it that you pull from", p))
	}
	return hosts, notes
}

// tokenFile checks --identity-token: the path of a token file, made
// absolute (docker runs the helper from any folder). A token given instead
// is refused. The value is shown only once it is known to be a path that
// exists: anything else may be (part of) a token.
func tokenFile(v string) (string, error) {
	hidden := logsafe.Hidden(v)
	if creds.LooksLikeJWT(v) {
		return "", fmt.Errorf("--identity-token takes the path of a file holding the token, not the token itself %s: a token saved in a config file expires within the hour; write it to a file and give that file's path", hidden)
	}
	if v == "" {
		return "", errors.New("--identity-token is empty; give the path of the file holding the ambient token")
	}
	abs, err := filepath.Abs(v)
	if err != nil {
		return "", fmt.Errorf("--identity-token %s: %w", hidden, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("--identity-token names no file that can be read %s; give the path of the file holding the ambient token", hidden)
	}
	if fi.IsDir() {
		return "", fmt.Errorf("--identity-token %s is a folder; give the path of the file holding the ambient token", quote(abs))
	}
	return abs, nil
}

// report says what happened to the docker config.
func report(b *strings.Builder, e Edit, hosts []string, dryRun bool) {
	if !e.Changed() {
		fmt.Fprintf(b, "%s already sends %s to %s; nothing to change\n", quote(e.Path), strings.Join(hosts, ", "), binaryName)
		return
	}
	verb, what := "now sends", ""
	if dryRun {
		verb = "would send"
	}
	if e.Created {
		what = " (a new file)"
	}
	fmt.Fprintf(b, "%s%s: credHelpers %s %s to %s\n", quote(e.Path), what, verb, strings.Join(append(slices.Clone(e.Added), replacedRegistries(e.Replaced)...), ", "), binaryName)
	if dryRun {
		fmt.Fprintf(b, "  credHelpers before: %s\n  credHelpers after: %s\n", indented(e.HelpersBefore), indented(e.HelpersAfter))
	}
}

// indented lays out a credHelpers object for the report.
func indented(raw json.RawMessage) string {
	if raw == nil {
		return "none"
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "  ", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

// reportSettings says what happened to the helper's config file.
func reportSettings(b *strings.Builder, e fileEdit, changes []settingChange, dryRun bool) {
	if !e.changed() {
		fmt.Fprintf(b, "%s already holds these settings; nothing to change\n", quote(e.path))
		return
	}
	verb := "saved"
	if dryRun {
		verb = "would save"
	}
	fmt.Fprintf(b, "%s: %s\n", quote(e.path), verb)
	for _, c := range changes {
		fmt.Fprintf(b, "  %s: %s -> %s\n", c.key, describeSetting(c.key, c.before), describeSetting(c.key, c.after))
	}
}

// describeSetting shows a setting's value as the helper's own messages
// do: an issuer without user info, query or fragment; an identity_token
// only if it is a path that exists; any other string only if it cannot be
// a secret (a hand-written config file may hold a token under any key).
func describeSetting(key string, v any) string {
	s, ok := v.(string)
	switch {
	case v == nil && key == "registries":
		return "not set (so " + creds.DefaultRegistry + ")"
	case !ok:
		return describe(v)
	case key == "issuer":
		return exchange.DescribeIssuer(s)
	case key == "identity_token":
		if _, err := os.Stat(s); err != nil {
			return logsafe.Hidden(s)
		}
	}
	return logsafe.Describe(s)
}

// pathWarning says what docker runs for credHelpers "cgr" when it is not
// this binary (self): docker runs the first docker-credential-cgr on PATH.
// chainctl's configure-docker makes a link of that name to chainctl, which
// writes the same credHelpers entry, so both on one machine is common.
// Empty when the first one is this binary.
func pathWarning(pathList, self string) string {
	o := FindOnPath(pathList, self)
	switch {
	case o.Path == "":
		return fmt.Sprintf("no %s on PATH: docker runs the helper by that name and would find none; put this binary (%s) on PATH as %s", binaryName, quote(self), binaryName)
	case o.Self:
		return ""
	case o.Chainctl:
		return fmt.Sprintf("the %s first on PATH, %s, is chainctl's link (to %s), not this binary (%s): docker will run chainctl, with chainctl's own login and settings, and none of the settings here; put this binary's folder earlier on PATH, or remove the link (see the README's section on coexisting with chainctl)", binaryName, quote(o.Path), quote(o.Target), quote(self))
	}
	return fmt.Sprintf("the %s first on PATH, %s, is not this binary (%s): docker will run that one; put this binary's folder earlier on PATH, or remove the other", binaryName, quote(o.Path), quote(self))
}

// lookPath finds name in the folder dir as docker will: a relative folder
// is skipped, since Go's os/exec refuses a program found through one.
func lookPath(dir, name string) string {
	if !filepath.IsAbs(dir) {
		return ""
	}
	if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
		return p
	}
	return ""
}
