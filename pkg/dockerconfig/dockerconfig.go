// Package dockerconfig is configure-docker: it points docker's config file
// at this helper with "credHelpers" entries, and saves the helper's own
// identity settings. Both files are edited in place, keeping every byte the
// edit does not need to change. It lives apart from pkg/creds because
// nothing on the credential path (get, kubelet) needs it.
package dockerconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

// HelperName is the credHelpers value that makes docker run
// docker-credential-cgr. Chainguard's chainctl writes the same value for
// its own link of that name, so PATH decides which one docker runs.
const HelperName = "cgr"

// Path is the docker config file docker reads: config.json in
// $DOCKER_CONFIG if that is set, else in .docker in the home folder
// ($HOME; %USERPROFILE% on Windows, as docker reads it). A DOCKER_CONFIG
// that names something other than a folder is an error: docker would not
// read a config there either.
func Path(getenv func(string) string) (string, error) {
	if dir := getenv("DOCKER_CONFIG"); dir != "" {
		if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
			return "", fmt.Errorf("DOCKER_CONFIG is %s, which is not a folder: docker reads config.json in the folder DOCKER_CONFIG names; point it at a folder, or unset it to use ~/.docker", quote(dir))
		}
		return filepath.Join(dir, "config.json"), nil
	}
	homeVar := "HOME"
	if runtime.GOOS == "windows" {
		homeVar = "USERPROFILE"
	}
	home := getenv(homeVar)
	if home == "" {
		return "", fmt.Errorf("neither DOCKER_CONFIG nor %s is set, so there is no docker config to edit; set DOCKER_CONFIG to the folder of docker's config.json", homeVar)
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

// Options change what Configure does.
type Options struct {
	// Force replaces a credHelpers entry that sends one of the registries
	// to another helper. Without it such an entry stops the edit.
	Force bool
	// DryRun works out the change without writing anything.
	DryRun bool
}

// Edit is what Configure did, or with DryRun would do, to a docker config.
type Edit struct {
	// Path is the file.
	Path string
	// Created says the file did not exist.
	Created bool
	// Added lists the registries that were given an entry.
	Added []string
	// Replaced lists entries that named another helper (Options.Force).
	Replaced []Replaced
	// HelpersBefore and HelpersAfter are the credHelpers object as it was
	// and as it is after the edit (nil: none). They never hold a secret,
	// unlike the rest of the file (auths), so they are what to show.
	HelpersBefore, HelpersAfter json.RawMessage
	// CredsStore is the file's credsStore, which answers for every registry
	// without a credHelpers entry ("" when none).
	CredsStore string
	// StaleAuths are the auths keys, as written, that name one of the
	// registries: credentials docker no longer uses for them.
	StaleAuths []string
	// Warnings are findings a person should know about; none of them
	// stopped the edit.
	Warnings []string
}

// ErrOtherHelper means a credHelpers entry sends one of the registries to
// another helper, which Configure replaces only with Options.Force.
var ErrOtherHelper = errors.New("another helper is configured")

// Replaced is a credHelpers entry that sent a registry to another helper.
type Replaced struct{ Registry, Helper string }

// Changed reports whether the file was (or would be) written.
func (e Edit) Changed() bool { return e.Created || len(e.Added) > 0 || len(e.Replaced) > 0 }

// Configure adds a credHelpers entry sending each of registries (hosts as
// docker names them: "cgr.dev", "registry.example.com:5000") to this helper,
// to the docker config at path, which it creates (0600, in a 0700 folder) if
// missing. Every other byte of the file is kept; a file that already has
// every entry is not rewritten. A malformed file, an entry that names
// another helper (without Force), or a file or folder that is not safe to
// replace is an error that names the file and the fix, and leaves it
// untouched.
func Configure(path string, registries []string, opts Options) (Edit, error) {
	out := Edit{Path: path}
	registries, err := hostsOnly(registries)
	if err != nil {
		return out, err
	}
	fe, err := editFile(path, 0o600, true, opts.DryRun, func(doc []byte) ([]byte, error) {
		e, after, err := addHelpers(doc, registries, opts.Force)
		e.Path = out.Path
		out = e
		if err != nil {
			return nil, fmt.Errorf("the docker config %s %w; the file was not changed", quote(path), err)
		}
		return after, nil
	})
	if err != nil {
		var le *linkError
		if errors.As(err, &le) {
			err = fmt.Errorf("%w; %s", err, linkFix(le))
		}
		return out, err
	}
	out.Created = fe.created
	return out, nil
}

// hostsOnly checks that each registry is a host as docker names it in
// credHelpers, normalised, and drops repeats. docker matches credHelpers
// keys exactly, so a wildcard would never match.
func hostsOnly(registries []string) ([]string, error) {
	var out []string
	for _, r := range registries {
		parsed, err := creds.ParseRegistries(r)
		if err != nil {
			return nil, err
		}
		if len(parsed) != 1 || parsed[0] != r || strings.HasPrefix(r, "*") {
			return nil, fmt.Errorf("registry %s is not one host as docker names it in credHelpers (lower case, no scheme, no wildcard)", logsafe.Quote(r, logsafe.DefaultLimit))
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no registries to configure")
	}
	return out, nil
}

// linkFix says how to configure the file a link points to.
func linkFix(le *linkError) string {
	target := le.target
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(le.path), target)
	}
	if filepath.Base(target) == "config.json" {
		return fmt.Sprintf("to edit the file it points to, run configure-docker with DOCKER_CONFIG=%s", quote(filepath.Dir(target)))
	}
	return "edit the file it points to by hand (--dry-run shows the credHelpers to write), or replace the link with a copy of that file"
}

// addHelpers works out the change to the docker config doc (nil: none
// yet) and returns the new document. It does no I/O.
func addHelpers(doc []byte, registries []string, force bool) (Edit, []byte, error) {
	var e Edit
	d, top, err := parseDocument(doc)
	if err != nil {
		return e, nil, err
	}
	e.Warnings = shadowWarnings(&e, d, top, registries)

	idx, n := top.lookupField("credHelpers")
	if n > 1 {
		return e, nil, fmt.Errorf("has %d credHelpers keys (JSON keys match in any case), and only the last counts; merge them into one", n)
	}
	var helpers object
	if idx >= 0 {
		m := top.members[idx]
		switch d[m.valStart] {
		case '{':
			if helpers, err = parseObject(d, m.valStart); err != nil {
				return e, nil, err
			}
			e.HelpersBefore = json.RawMessage(bytes.Clone(d[m.valStart:m.valEnd]))
		case 'n': // null: docker reads it as no entries
		default:
			return e, nil, errors.New("has a credHelpers that is not a JSON object; docker cannot read it either: make it an object such as {\"cgr.dev\": \"cgr\"}")
		}
	}

	// Every conflict is named at once, before anything changes.
	var conflicts []string
	for _, r := range registries {
		if i := helpers.lookupKey(r); i >= 0 {
			m := helpers.members[i]
			var name string
			if err := json.Unmarshal(d[m.valStart:m.valEnd], &name); err != nil {
				return e, nil, fmt.Errorf("has a credHelpers entry for %s that is not a string; docker cannot read it either: make it %q", r, HelperName)
			}
			if name == HelperName {
				continue
			}
			if !force {
				conflicts = append(conflicts, fmt.Sprintf("%s to %s", r, program(name)))
			}
			e.Replaced = append(e.Replaced, Replaced{Registry: r, Helper: name})
		} else {
			e.Added = append(e.Added, r)
		}
	}
	if len(conflicts) > 0 {
		return e, nil, fmt.Errorf("%w: credHelpers already sends %s, another helper; to replace it, run again with --force, or remove that entry", ErrOtherHelper, strings.Join(conflicts, ", "))
	}
	if !e.Changed() {
		return e, doc, nil
	}

	if idx < 0 || d[top.members[idx].valStart] == 'n' {
		d = setMember(d, top, idx, "credHelpers", []byte("{}"), newFileLayout)
		if _, top, err = parseDocument(d); err != nil {
			return e, nil, err
		}
		idx, _ = top.lookupField("credHelpers")
	}
	value := marshal(HelperName)
	for _, r := range append(append([]string(nil), e.Added...), replacedRegistries(e.Replaced)...) {
		m := top.members[idx]
		if helpers, err = parseObject(d, m.valStart); err != nil {
			return e, nil, err
		}
		d = setMember(d, helpers, helpers.lookupKey(r), r, value, nestedLayout(d, top, m))
		if _, top, err = parseDocument(d); err != nil {
			return e, nil, err // a bug: the edit must keep the document valid
		}
	}
	m := top.members[idx]
	e.HelpersAfter = json.RawMessage(bytes.Clone(d[m.valStart:m.valEnd]))
	for _, r := range e.Replaced {
		e.Warnings = append(e.Warnings, fmt.Sprintf("credHelpers sent %s to %s; it now sends it to %s (--force)", r.Registry, program(r.Helper), program(HelperName)))
	}
	return e, d, nil
}

func replacedRegistries(rs []Replaced) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Registry)
	}
	return out
}

// shadowWarnings notes what else in the config applies to the registries,
// a credsStore and auths entries for them, in e and as warnings.
func shadowWarnings(e *Edit, d []byte, top object, registries []string) []string {
	var w []string
	if i, _ := top.lookupField("credsStore"); i >= 0 {
		m := top.members[i]
		var store string
		if json.Unmarshal(d[m.valStart:m.valEnd], &store) == nil && store != "" {
			e.CredsStore = store
			w = append(w, fmt.Sprintf("credsStore is %s: docker keeps using %s for every registry without a credHelpers entry; for %s the credHelpers entries win", logsafe.Quote(store, logsafe.DefaultLimit), program(store), strings.Join(registries, ", ")))
		}
	}
	if i, _ := top.lookupField("auths"); i >= 0 && d[top.members[i].valStart] == '{' {
		auths, err := parseObject(d, top.members[i].valStart)
		if err != nil {
			return w
		}
		for _, m := range auths.members {
			host := creds.NormalizeHost(m.key)
			for _, r := range registries {
				if host == r {
					e.StaleAuths = append(e.StaleAuths, m.key)
					w = append(w, fmt.Sprintf("auths has an entry %s for %s, likely from an earlier docker login: docker uses the credHelpers entry instead, but other tools may still send those stored credentials, and it misleads anyone reading the file; delete that entry if it is stale", logsafe.Quote(m.key, logsafe.DefaultLimit), r))
				}
			}
		}
	}
	return w
}

// program names the helper docker runs for a credHelpers or credsStore
// value; a value with odd characters is quoted instead.
func program(name string) string {
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' && c != '.' {
			return "the helper " + logsafe.Quote(name, logsafe.DefaultLimit)
		}
	}
	return "docker-credential-" + name
}
