//go:build e2ekubelet

package cluster

import (
	"bufio"
	"fmt"
	"github.com/cgr-helper/docker-credential-cgr/test/internal/child"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
)

const (
	// readmeNS is the namespace the README's chainctl subject pattern names.
	readmeNS = "default"
	// readmeID is the id `chainctl iam identities create k8s-puller` would
	// print.
	readmeID = "720909c9f5279097d847ad02a2f24ba8f59de36a/c0ffee00000000d1"
	// podTimeout bounds the wait for a README pod to finish.
	podTimeout = 3 * time.Minute
)

// readmePods is issue 13: the README's pod section followed step by step
// on the real cluster, with the controls a platform engineer meets first.
type readmePods struct {
	c        *cluster
	r        readmeTutorial
	sts      *sandbox.STS
	registry string // the sandbox registry's host:port, standing in for cgr.dev
	jwks     string // the API server's JWKS, as the identity's static keys
}

// run follows the README: create the identity, apply the service account
// and the pod, and read the pod's log; then the controls.
func (p readmePods) run(t *testing.T, wantDigest string) {
	c := p.c
	// Step 1 of the README: an identity that trusts the cluster's issuer,
	// as `kubectl get --raw /.well-known/openid-configuration | jq -r
	// .issuer` prints it, for the README's subject pattern. The issuer is
	// private here, so the identity holds its JWKS as static keys.
	var discovery struct {
		Issuer string `json:"issuer"`
	}
	must(t, c.admin.get("/.well-known/openid-configuration", &discovery))
	if discovery.Issuer != clusterIssuer {
		t.Fatalf("the API server's discovery document names issuer %q, want %q", discovery.Issuer, clusterIssuer)
	}
	p.sts.AddIdentity(readmeID, sandbox.Identity{Issuer: discovery.Issuer, SubjectPattern: p.r.subjectPattern, IssuerKeys: p.jwks})
	t.Logf("identity %s trusts issuer %s for subject %q (the README's chainctl step)", readmeID, discovery.Issuer, p.r.subjectPattern)

	// What the controller-manager would publish in every namespace: the
	// pod's default service-account volume needs it.
	ca, err := os.ReadFile(c.caFile)
	must(t, err)
	must(t, c.admin.post("/api/v1/namespaces/"+readmeNS+"/configmaps", map[string]any{
		"metadata": map[string]any{"name": "kube-root-ca.crt"}, "data": map[string]string{"ca.crt": string(ca)},
	}, nil))

	// Step 2: the ServiceAccount, as written; and one the identity does not
	// trust, for a control.
	_, err = c.admin.applyYAML(readmeNS, p.r.serviceAccount)
	must(t, err)
	_, err = c.admin.applyYAML(readmeNS, applyEdits(t, p.r.serviceAccount, []edit{{old: "  name: puller\n", new: "  name: stranger\n"}}))
	must(t, err)

	base := podEdits(p.r, readmeID, p.registry, p.sts.URL(), podImage)
	logEdits(t, base)
	pod := func(name string, more ...edit) string {
		doc := applyEdits(t, p.r.pod, base)
		return applyEdits(t, doc, append([]edit{{old: "  name: cgr-pull\n", new: "  name: " + name + "\n"}}, more...))
	}

	t.Run("README pod: the kubelet's projected token feeds the helper in the pod, crane pulls", func(t *testing.T) {
		before := len(p.sts.Issued())
		got := c.runPod(t, "cgr-pull", pod("cgr-pull"))
		got.wantPhase(t, "Succeeded")
		if last := got.lastLine(); last != wantDigest {
			t.Errorf("crane digest printed %q, want %s", last, wantDigest)
		}
		wantIssued(t, p.sts, "system:serviceaccount:"+readmeNS+":puller", readmeID)
		if n := len(p.sts.Issued()) - before; n != 1 {
			t.Errorf("the pod's pull made %d exchanges, want 1", n)
		}
	})

	t.Run("control: the projected token left at the API server's audience; our wrong-audience message, no exchange", func(t *testing.T) {
		before := len(p.sts.Issued())
		got := c.runPod(t, "cgr-pull-default-audience", pod("cgr-pull-default-audience",
			edit{old: "          audience: issuer.enforce.dev       # the STS only accepts this audience\n"}))
		got.wantPhase(t, "Failed")
		got.wantLog(t, fmt.Sprintf("has audience %q, but the STS needs %q", clusterIssuer, sandbox.EnforceAudience))
		got.wantLog(t, "request or project the token with audience "+sandbox.EnforceAudience)
		if n := len(p.sts.Issued()) - before; n != 0 {
			t.Errorf("the STS issued %d token(s); the helper must refuse the token before asking", n)
		}
	})

	t.Run("control: a service account the identity does not trust; the STS's refusal in the log", func(t *testing.T) {
		got := c.runPod(t, "cgr-pull-stranger", pod("cgr-pull-stranger",
			edit{old: "  serviceAccountName: puller\n", new: "  serviceAccountName: stranger\n"}))
		got.wantPhase(t, "Failed")
		got.wantLog(t, "may not assume identity")
		got.wantLog(t, "system:serviceaccount:"+readmeNS+":stranger")
		for _, is := range p.sts.Issued() {
			if strings.HasSuffix(is.Subject, ":stranger") {
				t.Errorf("the STS issued identity %s to %s", is.Identity, is.Subject)
			}
		}
	})

	t.Run("bad input: a pod without the volume; the helper says where it looked, the pod fails at once", func(t *testing.T) {
		doc := applyEdits(t, p.r.pod, base)
		mounts, _, _ := strings.Cut(doc[strings.Index(doc, "    volumeMounts:\n"):], "  volumes:\n")
		vols := doc[strings.Index(doc, "  volumes:\n"):]
		got := c.runPod(t, "cgr-pull-no-volume", pod("cgr-pull-no-volume", edit{old: mounts}, edit{old: vols}))
		got.wantPhase(t, "Failed")
		got.wantLog(t, "no ambient OIDC token found: looked at")
		got.wantLog(t, `"/var/run/chainguard/oidc/oidc-token" (no such file)`)
	})
}

// podOutcome is how a pod ended and what its container wrote.
type podOutcome struct {
	name     string
	phase    string
	exitCode int
	ran      time.Duration // the container's start to finish
	log      []string
}

// runPod creates the pod from its YAML, waits until it has finished, and
// reads its container's log from the kubelet's pod-log folder (what
// `kubectl logs` shows; this cluster's API server has no client
// certificate for the kubelet, so the test reads the file).
func (c *cluster) runPod(t *testing.T, name, doc string) podOutcome {
	t.Helper()
	made, err := c.admin.applyYAML(readmeNS, doc)
	must(t, err)
	t.Logf("applied %s", strings.Join(made, ", "))
	var pod struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
		Spec struct {
			Containers []struct{ Name string } `json:"containers"`
		} `json:"spec"`
		Status struct {
			Phase             string `json:"phase"`
			ContainerStatuses []struct {
				State struct {
					Terminated *struct {
						ExitCode   int       `json:"exitCode"`
						StartedAt  time.Time `json:"startedAt"`
						FinishedAt time.Time `json:"finishedAt"`
					} `json:"terminated"`
				} `json:"state"`
			} `json:"containerStatuses"`
		} `json:"status"`
	}
	path := "/api/v1/namespaces/" + readmeNS + "/pods/" + name
	err = waitFor("pod "+name+" to finish", c.kubelet, podTimeout, func() bool {
		return c.admin.get(path, &pod) == nil && (pod.Status.Phase == "Succeeded" || pod.Status.Phase == "Failed")
	})
	if err != nil {
		evs, _ := c.admin.events(readmeNS, name)
		for _, e := range evs {
			t.Logf("  event %s %s: %s", e.Type, e.Reason, shorten(child.Redact(e.Message), 400))
		}
		t.Fatalf("%v (phase %q)", err, pod.Status.Phase)
	}
	out := podOutcome{name: name, phase: pod.Status.Phase, exitCode: -1}
	if cs := pod.Status.ContainerStatuses; len(cs) == 1 && cs[0].State.Terminated != nil {
		term := cs[0].State.Terminated
		out.exitCode, out.ran = term.ExitCode, term.FinishedAt.Sub(term.StartedAt)
	}
	logFile := filepath.Join(c.kubeletDir, "pod-logs", readmeNS+"_"+name+"_"+pod.Metadata.UID, pod.Spec.Containers[0].Name, "0.log")
	out.log = containerLog(t, logFile)
	t.Logf("pod %s/%s: %s, exit code %d, the container ran %s; its log:", readmeNS, name, out.phase, out.exitCode, out.ran)
	for _, l := range out.log {
		t.Logf("  | %s", shorten(child.Redact(l), 1200))
	}
	for _, l := range out.log {
		if strings.Contains(l, "eyJ") { // every token starts so, cut or whole
			t.Errorf("pod %s's log holds something token-like: %s", name, shorten(child.Redact(l), 200))
		}
	}
	return out
}

// containerLog is the text of a CRI log file: each line is "TIME STREAM
// TAG TEXT"; partial lines (tag P) are joined.
func containerLog(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Errorf("reading the container's log: %v", err)
		return nil
	}
	defer func() { _ = f.Close() }() // read only
	var lines []string
	partial := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 4)
		if len(fields) < 4 {
			continue
		}
		partial += fields[3]
		if fields[2] == "F" {
			lines = append(lines, partial)
			partial = ""
		}
	}
	return lines
}

func (o podOutcome) wantPhase(t *testing.T, phase string) {
	t.Helper()
	if o.phase != phase {
		t.Errorf("pod %s ended %s, want %s", o.name, o.phase, phase)
	}
}

func (o podOutcome) wantLog(t *testing.T, text string) {
	t.Helper()
	if !slices.ContainsFunc(o.log, func(l string) bool { return strings.Contains(l, text) }) {
		t.Errorf("pod %s's log does not say %q", o.name, text)
	}
}

func (o podOutcome) lastLine() string {
	if len(o.log) == 0 {
		return ""
	}
	return strings.TrimSpace(o.log[len(o.log)-1])
}
