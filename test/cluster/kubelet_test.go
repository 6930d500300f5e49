//go:build e2ekubelet

package cluster

import (
	"fmt"
	"github.com/cgr-helper/docker-credential-cgr/test/internal/child"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/test/internal/distribution"
)

const (
	ns = "e2e"
	// identityAnnotation is the service-account annotation the plugin reads
	// (the key configure-kubelet lists in optionalServiceAccountAnnotationKeys).
	identityAnnotation = "credentials.chainguard.dev/identity"

	// The assumable identities, in the shape of Chainguard ids. The
	// default (CHAINGUARD_IDENTITY) covers every service account of the
	// namespace; alpha and beta one each; denied one no one here has.
	defaultID = sandbox.DefaultIdentity
	alphaID   = "720909c9f5279097d847ad02a2f24ba8f59de36a/aaaa0000000000a1"
	betaID    = "720909c9f5279097d847ad02a2f24ba8f59de36a/bbbb0000000000b2"
	deniedID  = "720909c9f5279097d847ad02a2f24ba8f59de36a/0000000000000bad"
)

// pullTimeout bounds the wait for a pod's first Pulled or failed pull.
const pullTimeout = 3 * time.Minute

// TestKubeletPullsThroughPlugin is issue 8's real cluster: every case is
// judged by the pod's own Pulled / Failed events, read from the API server,
// and printed as they are judged.
func TestKubeletPullsThroughPlugin(t *testing.T) {
	bins := lookupComponents(t)
	helper := helperBinary(t)
	t.Logf("kube-apiserver: %s; kubelet: %s; etcd: %s; containerd: %s; registry: %s",
		versionOf(bins.apiserver, "--version"), versionOf(bins.kubelet, "--version"),
		versionOf(bins.etcd, "--version"), versionOf(bins.containerd, "--version"), versionOf(bins.registry, "--version"))

	// Fixed paths the kubelet and containerd use whatever the flags say;
	// those the run creates are removed after it.
	created := absentFixedPaths()
	t.Cleanup(func() { removeCreated(t, created) })
	if _, err := os.Stat("/var/lib/kubelet/device-plugins/kubelet.sock"); err == nil {
		skipOrFail(t, "this machine already runs a kubelet (/var/lib/kubelet/device-plugins/kubelet.sock exists); the test's kubelet would take over its fixed paths")
	}

	// Short: unix socket paths must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "cgr-k-")
	must(t, err)
	t.Cleanup(func() {
		unmountUnder(dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	start := time.Now()

	// The registry side: STS, realm, front door, a distribution registry
	// holding one runnable image per case.
	sts, err := sandbox.NewSTS()
	must(t, err)
	t.Cleanup(sts.Close)
	front, err := newFrontDoor(sts)
	must(t, err)
	t.Cleanup(front.srv.Close)
	pause := buildPause(t, dir)
	// The README pod's image: its own go install lines, run here.
	readme := readREADME(t)
	podArchive := filepath.Join(dir, "readme-pod.tar")
	podImageArchive(t, podArchive, bins.busybox, installLikeREADME(t, dir, readme.installs))
	tags := []string{"latest", "control", "node", "sa-norbac", "sa-alpha", "sa-beta", "sa-plain", "sa-denied", "sa-rotated", "sa-rotated-fixed"}
	storage := filepath.Join(dir, "storage")
	must(t, os.MkdirAll(storage, 0o700))
	seeder, seedAddr := startRegistry(t, bins.registry, filepath.Join(dir, "seed"), storage, nil)
	t.Cleanup(func() { seeder.stop(10 * time.Second) }) // if pushing fails
	push(t, seedAddr, pause, tags)
	seeder.stop(10 * time.Second)
	certFile := filepath.Join(dir, "realm.crt")
	must(t, os.WriteFile(certFile, front.realm.CertificatePEM(), 0o600))
	reg, regAddr := startRegistry(t, bins.registry, filepath.Join(dir, "registry"), storage, &distribution.TokenAuth{
		Realm: front.srv.URL + "/token", Service: front.realm.Service(), Issuer: front.realm.Issuer(), RootCertBundle: certFile,
	})
	t.Cleanup(func() { reg.stop(10 * time.Second) })
	u := urlHost{regAddr}.url()
	front.backend.Store(&u)
	host := front.host()

	// The cluster.
	c := startControlPlane(t, dir, bins)
	t.Logf("control plane ready in %s: API server %s, service-account issuer %s", time.Since(start).Round(time.Millisecond), c.apiURL, clusterIssuer)

	// The STS trusts the cluster the way Chainguard does for a cluster
	// whose issuer is not public: the identities hold the API server's
	// JWKS, as `kubectl get --raw /openid/v1/jwks` prints it.
	var jwks []byte
	must(t, c.admin.get("/openid/v1/jwks", &jwks))
	keys, err := sandbox.ParseIssuerKeys(string(jwks))
	must(t, err)
	t.Logf("registered the API server's JWKS (%d key(s), kid %s) as static issuer keys", len(keys), strings.Join(sortedKeys(keys), ","))
	identitySubjects := map[string]string{
		defaultID: "system:serviceaccount:" + ns + ":[^:]+",
		alphaID:   "system:serviceaccount:" + ns + ":alpha",
		betaID:    "system:serviceaccount:" + ns + ":beta",
		deniedID:  "system:serviceaccount:elsewhere:nobody",
	}
	for id, sub := range identitySubjects {
		sts.AddIdentity(id, sandbox.Identity{Issuer: clusterIssuer, SubjectPattern: sub, IssuerKeys: string(jwks)})
	}

	// Objects no controller-manager makes here: the namespace and the
	// service accounts, by hand.
	must(t, c.admin.post("/api/v1/namespaces", map[string]any{"metadata": map[string]any{"name": ns}}, nil))
	for sa, id := range map[string]string{
		"default": "", "node-puller": "", "norbac": "", "plain": "", "rotated": "",
		"alpha": alphaID, "beta": betaID, "mallory": deniedID,
	} {
		md := map[string]any{"name": sa}
		if id != "" {
			md["annotations"] = map[string]string{identityAnnotation: id}
		}
		must(t, c.admin.post("/api/v1/namespaces/"+ns+"/serviceaccounts", map[string]any{"metadata": md}, nil))
	}

	c.startContainerd(host, pause)
	c.importImage(t, podArchive)
	pluginDir := filepath.Join(dir, "plugins")
	must(t, os.MkdirAll(pluginDir, 0o700))
	copyFile(t, helper, filepath.Join(pluginDir, "docker-credential-cgr"), 0o755)
	cacheDir := filepath.Join(dir, "plugin-cache")

	// The node's own ambient token for node mode: a real token from the
	// API server (TokenRequest) for audience issuer.enforce.dev, in a file
	// on the node, as a projected token would be. Never printed.
	var tr struct {
		Status struct{ Token string } `json:"status"`
	}
	must(t, c.admin.post("/api/v1/namespaces/"+ns+"/serviceaccounts/node-puller/token", map[string]any{
		"spec": map[string]any{"audiences": []string{sandbox.EnforceAudience}, "expirationSeconds": 3600},
	}, &tr))
	nodeTokenFile := filepath.Join(dir, "node-oidc-token")
	must(t, os.WriteFile(nodeTokenFile, []byte(tr.Status.Token), 0o600))

	baseEnv := []string{
		"HOME=" + filepath.Join(dir, "admin-home"), // no personal config file
		"CHAINGUARD_REGISTRY=" + host,
		"CHAINGUARD_ISSUER=" + sts.URL(),
		"CHAINGUARD_IDENTITY=" + defaultID,
		"CHAINGUARD_CACHE_DIR=" + cacheDir,
	}
	nodeConfig := configureKubelet(t, helper, dir, "node.yaml", append(baseEnv, "CHAINGUARD_IDENTITY_TOKEN="+nodeTokenFile))
	saConfig := configureKubelet(t, helper, dir, "service-account.yaml", baseEnv, "--mode", "service-account")
	rbac := configureKubelet(t, helper, dir, "rbac.yaml", baseEnv, "--rbac")

	ref := func(tag string) string { return host + "/" + repo + ":" + tag }

	t.Run("control: no provider configured, the pull is refused", func(t *testing.T) {
		c.startKubelet(t, "", "")
		got := c.pull(t, "control", "default", ref("control"))
		wantFailed(t, got)
		// Gone before the next case, or the kubelet retries it there.
		c.deletePod(t, "control")
	})

	t.Run("node mode: pulled", func(t *testing.T) {
		c.startKubelet(t, nodeConfig, pluginDir)
		got := c.pull(t, "node", "default", ref("node"))
		wantPulled(t, got)
		wantIssued(t, sts, "system:serviceaccount:"+ns+":node-puller", defaultID)
		c.deletePod(t, "node")
	})

	t.Run("service-account mode without the RBAC: refused, the kubelet says why", func(t *testing.T) {
		c.startKubelet(t, saConfig, pluginDir)
		before := len(sts.Issued())
		got := c.pull(t, "sa-norbac", "norbac", ref("sa-norbac"))
		wantFailed(t, got)
		if n := len(sts.Issued()); n != before {
			t.Errorf("the STS issued %d token(s) during this case; the plugin must not have been able to exchange", n-before)
		}
		c.deletePod(t, "sa-norbac") // or it pulls once the RBAC is there
		// The NodeRestriction admission plugin's words (1.37):
		// "system:node:NAME is not authorized to request tokens for audience ...".
		reason := "system:node:" + nodeName + " is not authorized to request tokens for audience"
		lines := grepLog(c.kubeletLog, reason, sandbox.EnforceAudience, `pod="`+ns+`/sa-norbac"`)
		for _, l := range firstN(lines, 3) {
			t.Logf("kubelet log: %s", shorten(l, 600))
		}
		if len(lines) == 0 {
			t.Errorf("the kubelet's log does not say %q; lines about the audience:\n%s", reason,
				strings.Join(firstN(grepLog(c.kubeletLog, sandbox.EnforceAudience), 5), "\n"))
		}
	})

	// The RBAC exactly as configure-kubelet --rbac printed it. The kubelet
	// keeps running with the service-account config.
	made, err := c.admin.applyYAML("", rbac)
	must(t, err)
	t.Logf("applied the RBAC configure-kubelet --rbac printed: %s", strings.Join(made, ", "))

	// The four pods go in at once; serialized pulls take them in turn.
	cases := []struct{ pod, sa, tag string }{
		{"sa-alpha", "alpha", "sa-alpha"},
		{"sa-beta", "beta", "sa-beta"},
		{"sa-plain", "plain", "sa-plain"},
		{"sa-denied", "mallory", "sa-denied"},
	}
	for _, k := range cases {
		c.createPod(t, k.pod, k.sa, ref(k.tag))
	}

	t.Run("service-account mode with the RBAC: two annotated service accounts, each with its own identity", func(t *testing.T) {
		wantPulled(t, c.judge(t, "sa-alpha"))
		wantPulled(t, c.judge(t, "sa-beta"))
		wantIssued(t, sts, "system:serviceaccount:"+ns+":alpha", alphaID)
		wantIssued(t, sts, "system:serviceaccount:"+ns+":beta", betaID)
	})

	t.Run("service-account mode: an unannotated service account falls back to CHAINGUARD_IDENTITY", func(t *testing.T) {
		wantPulled(t, c.judge(t, "sa-plain"))
		wantIssued(t, sts, "system:serviceaccount:"+ns+":plain", defaultID)
	})

	t.Run("service-account mode: an identity the STS refuses, not pulled, our reason in the kubelet's log", func(t *testing.T) {
		wantFailed(t, c.judge(t, "sa-denied"))
		for _, is := range sts.Issued() {
			if is.Subject == "system:serviceaccount:"+ns+":mallory" {
				t.Errorf("the STS issued a token for mallory (identity %s)", is.Identity)
			}
		}
		lines := grepLog(c.kubeletLog, deniedID)
		for _, l := range firstN(lines, 3) {
			t.Logf("kubelet log: %s", shorten(l, 800))
		}
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "may not assume identity") }) {
			t.Errorf("the kubelet's log has no line with the plugin's reason (the STS refusing %s)", deniedID)
		}
	})

	// Issue 13: the README's pod, in the same cluster, before the key
	// rotation below (its identity holds the JWKS of now).
	latest, err := image(t, pause, "latest").Digest()
	must(t, err)
	readmePods{c: c, r: readme, sts: sts, registry: host, jwks: string(jwks)}.run(t, latest.String())

	t.Run("key rotation: the cluster signs with a key the identity lacks; refused, the fix named; pulled once the keys are updated", func(t *testing.T) {
		// The API server restarts with a new signing key; the old one still
		// verifies, so its JWKS now holds both, but the identities hold the
		// JWKS registered at the start.
		c.rotateServiceAccountKey(t)
		var rotated []byte
		must(t, c.admin.get("/openid/v1/jwks", &rotated))
		now, err := sandbox.ParseIssuerKeys(string(rotated))
		must(t, err)
		var newKid string
		for kid := range now {
			if keys[kid] == nil {
				newKid = kid
			}
		}
		if newKid == "" {
			t.Fatalf("the API server's JWKS has no new key after the rotation (kids %v)", sortedKeys(now))
		}
		t.Logf("the API server now signs with kid %s; its JWKS holds %s", newKid, strings.Join(sortedKeys(now), ","))

		c.createPod(t, "sa-rotated", "rotated", ref("sa-rotated"))
		wantFailed(t, c.judge(t, "sa-rotated"))
		lines := grepLog(c.kubeletLog, "not found in the issuer keys of identity", newKid)
		for _, l := range firstN(lines, 1) {
			t.Logf("kubelet log: %s", shorten(l, 1200))
		}
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "update the identity's issuer keys") }) {
			t.Errorf("the kubelet's log has no line naming the unknown key id %s and the issuer keys to update", newKid)
		}

		// The fix the message names: update the identity's issuer keys
		// with the cluster's current JWKS. A new pod of the same service
		// account pulls at once (the kubelet caches no failure; the first
		// pod would too, after its pull back-off).
		c.deletePod(t, "sa-rotated")
		sts.AddIdentity(defaultID, sandbox.Identity{Issuer: clusterIssuer, SubjectPattern: identitySubjects[defaultID], IssuerKeys: string(rotated)})
		t.Logf("updated identity %s with the API server's current JWKS", defaultID)
		wantPulled(t, c.pull(t, "sa-rotated-fixed", "rotated", ref("sa-rotated-fixed")))
		wantIssued(t, sts, "system:serviceaccount:"+ns+":rotated", defaultID)
	})

	// Everything listens on loopback only.
	for _, p := range []*proc{c.etcd, c.apiserver, c.containerd, c.kubelet, reg} {
		addrs, err := listeners(p.cmd.Process.Pid)
		if err != nil {
			t.Errorf("listing %s's sockets: %v", p.name, err)
			continue
		}
		t.Logf("%s listens on %s", p.name, strings.Join(addrs, ", "))
		for _, a := range addrs {
			if !onLoopback(a) {
				t.Errorf("%s listens on %s, not on loopback", p.name, a)
			}
		}
	}
	if addrs, err := listeners(os.Getpid()); err != nil {
		t.Errorf("listing the test's own sockets: %v", err)
	} else {
		t.Logf("the test itself (STS, realm front door) listens on %s", strings.Join(addrs, ", "))
		for _, a := range addrs {
			if !onLoopback(a) {
				t.Errorf("the test listens on %s, not on loopback", a)
			}
		}
	}

	// Every kubelet start has its own log; node mode's is not the last.
	logs, err := filepath.Glob(filepath.Join(c.dir, "kubelet-*.log"))
	if err != nil || len(logs) == 0 {
		t.Errorf("no kubelet logs in %s (%v)", c.dir, err)
	}
	for _, log := range logs {
		for _, line := range grepLog(log, "eyJ") {
			t.Errorf("the kubelet's log %s holds something token-like: %s", filepath.Base(log), shorten(line, 200)) // grepLog redacts
		}
	}
	t.Logf("STS exchanges (identity <- subject):")
	for _, is := range sts.Issued() {
		t.Logf("  %s <- %s (issuer %s)", is.Identity, is.Subject, is.Issuer)
	}
	t.Logf("whole run so far: %s", time.Since(start).Round(time.Second))

	// Pods go first, so the kubelet stops their containers; then the
	// cleanups registered above stop the kubelet, containerd (removing
	// tasks first), the API server, etcd and the registry, by PID.
	for _, p := range []string{"control", "node", "sa-norbac", "sa-alpha", "sa-beta", "sa-plain", "sa-denied", "sa-rotated", "sa-rotated-fixed"} {
		if err := c.admin.delete("/api/v1/namespaces/" + ns + "/pods/" + p); err != nil {
			t.Logf("deleting pod %s: %v", p, err)
		}
	}
	for _, p := range []string{"cgr-pull", "cgr-pull-default-audience", "cgr-pull-stranger", "cgr-pull-no-volume"} {
		if err := c.admin.delete("/api/v1/namespaces/" + readmeNS + "/pods/" + p); err != nil {
			t.Logf("deleting pod %s: %v", p, err)
		}
	}
	c.stopKubelet()
}

// configureKubelet runs the helper's configure-kubelet with env and
// returns what it printed on stdout (also written to dir/name); what it
// says on stderr is logged.
func configureKubelet(t *testing.T, helper, dir, name string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(helper, append([]string{"configure-kubelet"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("configure-kubelet %s: %v\n%s", strings.Join(args, " "), err, child.Redact(stderr.String()))
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		first, rest, _ := strings.Cut(s, "\n")
		more := ""
		if rest != "" {
			more = fmt.Sprintf(" (and %d more lines)", strings.Count(rest, "\n")+1)
		}
		t.Logf("configure-kubelet %s said on stderr: %s%s", strings.Join(args, " "), child.Redact(first), more)
	}
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, out, 0o600))
	if name == "rbac.yaml" {
		return string(out)
	}
	return p
}

// pullResult is what a pod's events said about its image pull.
type pullResult struct {
	pod    string
	pulled bool
	events []event
}

// createPod creates a hostNetwork pod bound to the node (no scheduler),
// without a mounted service-account token, that always pulls its image.
func (c *cluster) createPod(t *testing.T, name, sa, image string) {
	t.Helper()
	pod := map[string]any{
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"nodeName":                      nodeName,
			"hostNetwork":                   true,
			"serviceAccountName":            sa,
			"automountServiceAccountToken":  false,
			"restartPolicy":                 "Never",
			"terminationGracePeriodSeconds": 1,
			"containers": []map[string]any{{
				"name": "c", "image": image, "imagePullPolicy": "Always",
			}},
		},
	}
	must(t, c.admin.post("/api/v1/namespaces/"+ns+"/pods", pod, nil))
}

// deletePod deletes a pod at once (grace period 0).
func (c *cluster) deletePod(t *testing.T, name string) {
	t.Helper()
	if err := c.admin.delete("/api/v1/namespaces/" + ns + "/pods/" + name); err != nil {
		t.Errorf("deleting pod %s: %v", name, err)
	}
}

// pull creates the pod and judges it.
func (c *cluster) pull(t *testing.T, name, sa, image string) pullResult {
	t.Helper()
	c.createPod(t, name, sa, image)
	return c.judge(t, name)
}

// judge waits for the pod's first Pulled event or failed pull, and prints
// its pull events.
func (c *cluster) judge(t *testing.T, name string) pullResult {
	t.Helper()
	r := pullResult{pod: name}
	decided := false
	err := waitFor("pod "+name+"'s pull to succeed or fail", c.kubelet, pullTimeout, func() bool {
		evs, err := c.admin.events(ns, name)
		if err != nil {
			return false
		}
		r.events = evs
		for _, e := range evs {
			switch {
			case e.Reason == "Pulled":
				r.pulled, decided = true, true
			case e.Reason == "Failed" && strings.Contains(e.Message, "Failed to pull image"):
				decided = true
			}
		}
		return decided
	})
	t.Logf("pod %s/%s pull events:", ns, name)
	for _, e := range r.events {
		if slices.Contains([]string{"Pulling", "Pulled", "Failed", "BackOff", "ErrImagePull", "Created", "Started"}, e.Reason) {
			t.Logf("  %s %s (x%d): %s", e.Type, e.Reason, max(e.Count, 1), shorten(child.Redact(e.Message), 500))
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantPulled(t *testing.T, r pullResult) {
	t.Helper()
	if !r.pulled {
		t.Errorf("pod %s: the image was not pulled", r.pod)
	} else {
		t.Logf("pod %s: pulled, as wanted", r.pod)
	}
}

func wantFailed(t *testing.T, r pullResult) {
	t.Helper()
	if r.pulled {
		t.Errorf("pod %s: the image was pulled; the pull must be refused", r.pod)
	} else {
		t.Logf("pod %s: pull refused, as wanted", r.pod)
	}
}

// wantIssued checks at the STS that subject's token was exchanged for
// identity, and never for another identity.
func wantIssued(t *testing.T, sts *sandbox.STS, subject, identity string) {
	t.Helper()
	found := false
	for _, is := range sts.Issued() {
		if is.Subject != subject {
			continue
		}
		if is.Issuer != clusterIssuer {
			t.Errorf("STS: %s's token had issuer %s, want %s", subject, is.Issuer, clusterIssuer)
		}
		if is.Identity != identity {
			t.Errorf("STS: %s assumed identity %s, want %s", subject, is.Identity, identity)
			continue
		}
		found = true
	}
	if !found {
		t.Errorf("STS: no token was issued for identity %s to %s", identity, subject)
	} else {
		t.Logf("STS: identity %s was issued to %s (token from the real API server, verified with its static keys)", identity, subject)
	}
}

// helperBinary is the built docker-credential-cgr: CGR_E2E_HELPER (make
// e2e-kubelet passes the binary it built), or one built now.
func helperBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("CGR_E2E_HELPER"); b != "" {
		abs, err := filepath.Abs(b)
		must(t, err)
		_, err = os.Stat(abs)
		must(t, err)
		return abs
	}
	out := filepath.Join(t.TempDir(), "docker-credential-cgr")
	build := exec.Command("go", "build", "-o", out, "./cmd/docker-credential-cgr")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building docker-credential-cgr: %v\n%s", err, b)
	}
	return out
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	must(t, err)
	defer func() { _ = in.Close() }() // read only
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	must(t, err)
	_, err = io.Copy(out, in)
	must(t, err)
	must(t, out.Close())
}

// versionOf is the first line a program prints for its version flag.
func versionOf(program string, args ...string) string {
	out, err := run(30*time.Second, program, args...)
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	return first
}

type urlHost struct{ host string }

func (u urlHost) url() url.URL { return url.URL{Scheme: "http", Host: u.host} }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
