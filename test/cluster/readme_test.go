//go:build e2ekubelet

package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's "Use inside a Kubernetes pod" section is the source of the
// pod the cluster test runs: the test reads the section, and changes only
// what this cluster cannot have (edits below, each with its reason). If the
// README changes so an edit no longer applies, the test fails and says
// which line moved, so the README and what ran cannot drift apart.

// readmeTutorial is what the README's pod section holds.
type readmeTutorial struct {
	// subjectPattern is chainctl's --subject-pattern: the service account
	// the identity trusts.
	subjectPattern string
	// serviceAccount and pod are the YAML documents, as written.
	serviceAccount, pod string
	// installs are the arguments of the pod script's `go install` lines.
	installs []string
}

var (
	subjectFlag = regexp.MustCompile(`--subject-pattern='([^']+)'`)
	installLine = regexp.MustCompile(`(?m)^ *go install (\S+)\n`)
)

// readREADME reads the pod section of the repository's README.
func readREADME(t *testing.T) readmeTutorial {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	must(t, err)
	section := between(t, string(b), "\n## Use inside a Kubernetes pod\n", "\n### ")
	var r readmeTutorial
	sh := fenced(t, section, "sh")
	m := subjectFlag.FindStringSubmatch(sh)
	if m == nil {
		t.Fatalf("the README's chainctl command has no --subject-pattern='...':\n%s", sh)
	}
	r.subjectPattern = m[1]
	docs := strings.Split(fenced(t, section, "yaml"), "---\n")
	if len(docs) != 2 || !strings.Contains(docs[0], "kind: ServiceAccount\n") || !strings.Contains(docs[1], "kind: Pod\n") {
		t.Fatalf("the README's pod YAML is not a ServiceAccount then a Pod:\n%s", strings.Join(docs, "---\n"))
	}
	r.serviceAccount, r.pod = docs[0], docs[1]
	for _, m := range installLine.FindAllStringSubmatch(r.pod, -1) {
		r.installs = append(r.installs, m[1])
	}
	if len(r.installs) == 0 {
		t.Fatalf("the README's pod script has no `go install` line:\n%s", r.pod)
	}
	return r
}

// between is the part of s from the first start to the next end after it.
func between(t *testing.T, s, start, end string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		t.Fatalf("the README has no %q", strings.TrimSpace(start))
	}
	section, _, _ := strings.Cut(rest, end)
	return section
}

// fenced is the first ```lang code block of s.
func fenced(t *testing.T, s, lang string) string {
	t.Helper()
	return between(t, s, "```"+lang+"\n", "```\n")
}

// edit replaces the one occurrence of old in a README document.
type edit struct {
	old, new string
	why      string
}

// applyEdits applies edits in order; each old text must occur exactly once.
func applyEdits(t *testing.T, doc string, edits []edit) string {
	t.Helper()
	for _, e := range edits {
		if n := strings.Count(doc, e.old); n != 1 {
			t.Fatalf("the README's pod section holds %q %d times, not once: the README changed; change this test's edits with it\n%s", e.old, n, doc)
		}
		doc = strings.Replace(doc, e.old, e.new, 1)
	}
	return doc
}

// podEdits are what the cluster test changes in the README's pod, and why.
// Everything else (the service account, the projected volume: audience,
// path, mount, expiry; the command and the docker config) runs as written.
func podEdits(r readmeTutorial, identity, registry, issuer, image string) []edit {
	edits := []edit{
		{
			old: "spec:\n  serviceAccountName: puller\n",
			new: "spec:\n  nodeName: " + nodeName + "\n  hostNetwork: true\n  serviceAccountName: puller\n",
			why: "no scheduler runs, so the pod names its node; no CNI plugin is installed, so it shares the node's network, where the sandbox listens",
		},
		{
			old: "    image: cgr.dev/chainguard/go:latest-dev\n",
			new: "    image: " + image + "\n    imagePullPolicy: Never\n",
			why: "cgr.dev cannot be reached here: the image is built by the test (busybox's sh, and the binaries the README's own go install lines built), imported into containerd",
		},
		{
			old: `      value: "<id printed by chainctl>"` + "\n",
			new: `      value: "` + identity + `"` + "\n" +
				"    - name: CHAINGUARD_REGISTRY\n      value: \"" + registry + "\"\n" +
				"    - name: CHAINGUARD_ISSUER\n      value: \"" + issuer + "\"\n",
			why: "the identity the test registered; the sandbox's registry and STS stand in for cgr.dev and issuer.enforce.dev",
		},
		{
			old: `      export PATH="$PATH:$(go env GOPATH)/bin"` + "\n",
			new: "",
			why: "the image has no go; the binaries are in /usr/local/bin, on its PATH",
		},
		{
			old: `{"credHelpers":{"cgr.dev":"cgr"}}`,
			new: `{"credHelpers":{"` + registry + `":"cgr"}}`,
			why: "the sandbox's registry stands in for cgr.dev",
		},
		{
			old: "crane digest cgr.dev/<your-org>/static:latest",
			new: "crane digest " + registry + "/" + repo + ":latest",
			why: "the sandbox's registry, and the organization its repository lives in",
		},
	}
	for _, in := range r.installs {
		edits = append(edits, edit{
			old: "      go install " + in + "\n",
			why: "run on the node before the pod, with the image's GOBIN (see installLikeREADME)",
		})
	}
	return edits
}

// logEdits prints the edits for the reader of the test's output.
func logEdits(t *testing.T, edits []edit) {
	t.Helper()
	t.Logf("the README's pod, with %d edits for this cluster:", len(edits))
	for _, e := range edits {
		what := fmt.Sprintf("%q -> %q", strings.TrimSpace(e.old), strings.TrimSpace(e.new))
		if e.new == "" {
			what = fmt.Sprintf("removed %q", strings.TrimSpace(e.old))
		}
		t.Logf("  %s: %s", what, e.why)
	}
}
