package kubelettest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/credentialprovider"
	"k8s.io/kubernetes/pkg/credentialprovider/plugin"
	"k8s.io/kubernetes/pkg/features"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	cgr "github.com/cgr-helper/docker-credential-cgr/pkg/kubelet"
)

// execLine is what the kubelet's plugin code (v1.37) logs (at -v=5) each
// time it runs the plugin, rather than answering from its in-memory cache;
// failLine is in what it logs when the plugin fails. Both are structured
// log lines since 1.37 (1.34 wrote "Getting image %s credentials from
// external exec plugin %s" and "Failed getting credential ...").
const (
	execLine = `"Getting image credentials from external exec plugin" pluginName="docker-credential-cgr"`
	failLine = "failed to get credential from external registry credential provider: error execing credential provider plugin docker-credential-cgr"
)

// pull looks up credentials for the image exactly as the kubelet's image
// manager does for a pod, and reports what changed meanwhile.
type pull struct {
	creds    []credentialprovider.TrackedAuthConfig
	found    bool
	execs    int         // plugin executions
	requests int         // STS requests
	tokens   []tokenCall // TokenRequests the kubelet made
	log      string      // what klog wrote meanwhile (may hold our errors; never shown unredacted)
}

func lookup(ns, pod, podUID, serviceAccount string) pull {
	logBefore := len(env.logs.String())
	tokensBefore := len(env.api.tokenCalls())
	requestsBefore := env.sb.STS.Requests()

	keyring := plugin.NewExternalCredentialProviderDockerKeyring(ns, pod, podUID, serviceAccount)
	creds, found := keyring.Lookup(env.image)

	log := env.logs.String()[logBefore:]
	return pull{
		creds:    creds,
		found:    found,
		execs:    strings.Count(log, execLine),
		requests: env.sb.STS.Requests() - requestsBefore,
		tokens:   env.api.tokenCalls()[tokensBefore:],
		log:      log,
	}
}

// credential checks the pull returned exactly one credential, ours, and
// returns its password.
func (p pull) credential(t *testing.T) string {
	t.Helper()
	if !p.found || len(p.creds) != 1 {
		t.Fatalf("the kubelet got %d credentials (found=%v), want 1; kubelet log:\n%s", len(p.creds), p.found, redact(p.log))
	}
	c := p.creds[0]
	if c.Username != "_token" {
		t.Errorf("username = %q, want _token", c.Username)
	}
	if c.Password == "" {
		t.Fatal("empty password")
	}
	return c.Password
}

// checkTokenRequest checks the kubelet asked the API server for the pod's
// service-account token with the STS's audience, bound to the pod.
func checkTokenRequest(t *testing.T, p pull, ns, sa, pod, podUID string) {
	t.Helper()
	if len(p.tokens) != 1 {
		t.Fatalf("the kubelet made %d TokenRequests, want 1 (a fresh pod-bound token per lookup)", len(p.tokens))
	}
	tc := p.tokens[0]
	if tc.namespace != ns || tc.name != sa {
		t.Errorf("TokenRequest for %s/%s, want %s/%s", tc.namespace, tc.name, ns, sa)
	}
	spec := tc.request.Spec
	if len(spec.Audiences) != 1 || spec.Audiences[0] != sandbox.EnforceAudience {
		t.Errorf("TokenRequest audiences = %q, want [%s]", spec.Audiences, sandbox.EnforceAudience)
	}
	if string(tc.request.UID) != env.api.uid(ns, sa) {
		t.Errorf("TokenRequest UID precondition = %q, want the service account's %q", tc.request.UID, env.api.uid(ns, sa))
	}
	ref := spec.BoundObjectRef
	if ref == nil || ref.Kind != "Pod" || ref.APIVersion != "v1" || ref.Name != pod || ref.UID != types.UID(podUID) {
		t.Errorf("TokenRequest bound object = %+v, want pod %s (%s)", ref, pod, podUID)
	}
}

// TestFeatureGate: service-account tokens for credential providers are on
// by default in the kubelet code under test (1.37; beta and on by default
// since 1.34), so the config needs no feature gate there.
func TestFeatureGate(t *testing.T) {
	if !utilfeature.DefaultFeatureGate.Enabled(features.KubeletServiceAccountTokenForCredentialProviders) {
		t.Error("KubeletServiceAccountTokenForCredentialProviders is off by default")
	}
}

// TestKubeletDrivesPlugin runs the binary through the kubelet's own plugin
// code, configured by the binary's own configure-kubelet output
// (service-account mode). The steps share the kubelet's in-memory cache,
// so they run in order.
func TestKubeletDrivesPlugin(t *testing.T) {
	if env.registerErr != nil {
		t.Fatalf("the kubelet rejected configure-kubelet's service-account config: %v", env.registerErr)
	}
	passwords := map[string]string{} // step -> registry token

	t.Run("node mode: a pod without a service account", func(t *testing.T) {
		p := lookup("kube-system", "static-web-node0", "pod-uid-static-1", "")
		pw := p.credential(t)
		id, actor := identify(t, pw)
		if id != sandbox.DefaultIdentity || actor != subjectOf(nodeNamespace, nodeAccount) {
			t.Errorf("credentials for identity %q from ambient %q, want %q from the node's %q", id, actor, sandbox.DefaultIdentity, subjectOf(nodeNamespace, nodeAccount))
		}
		if p.execs != 1 || p.requests != 1 || len(p.tokens) != 0 {
			t.Errorf("execs=%d STS requests=%d TokenRequests=%d, want 1, 1, 0", p.execs, p.requests, len(p.tokens))
		}
		passwords["node"] = pw

		// cacheKeyType Registry: the next pod's pull is the kubelet's cache.
		p = lookup("kube-system", "static-web-node1", "pod-uid-static-2", "")
		if pw2 := p.credential(t); pw2 != pw {
			t.Error("a second node-mode pull got different credentials; want the kubelet's cached ones")
		}
		if p.execs != 0 || p.requests != 0 {
			t.Errorf("second node-mode pull: execs=%d STS requests=%d, want 0 (kubelet cache)", p.execs, p.requests)
		}
	})

	t.Run("service-account mode: annotated service account", func(t *testing.T) {
		p := lookup("team-a", "web-1", "pod-uid-a-1", "builder")
		pw := p.credential(t)
		checkTokenRequest(t, p, "team-a", "builder", "web-1", "pod-uid-a-1")
		// identity-a trusts only team-a/builder's subject: these
		// credentials prove the pod's token and the annotation both
		// reached the STS through the binary.
		id, actor := identify(t, pw)
		if id != identityA || actor != subjectOf("team-a", "builder") {
			t.Errorf("credentials for identity %q from ambient %q, want %q from %q", id, actor, identityA, subjectOf("team-a", "builder"))
		}
		if p.execs != 1 || p.requests != 1 {
			t.Errorf("execs=%d STS requests=%d, want 1, 1", p.execs, p.requests)
		}
		passwords["team-a"] = pw

		// Another pod of the same service account: a fresh pod-bound
		// token is requested, but cacheType ServiceAccount lets the
		// kubelet answer from its cache.
		p = lookup("team-a", "web-2", "pod-uid-a-2", "builder")
		if p.credential(t) != pw {
			t.Error("a second pod of team-a/builder got different credentials; want the kubelet's cached ones")
		}
		checkTokenRequest(t, p, "team-a", "builder", "web-2", "pod-uid-a-2")
		if p.execs != 0 || p.requests != 0 {
			t.Errorf("second team-a pull: execs=%d STS requests=%d, want 0 (kubelet cache)", p.execs, p.requests)
		}
	})

	t.Run("service-account mode: a second service account", func(t *testing.T) {
		p := lookup("team-b", "api-1", "pod-uid-b-1", "builder")
		pw := p.credential(t)
		checkTokenRequest(t, p, "team-b", "builder", "api-1", "pod-uid-b-1")
		id, actor := identify(t, pw)
		if id != identityB || actor != subjectOf("team-b", "builder") {
			t.Errorf("credentials for identity %q from ambient %q, want %q from %q", id, actor, identityB, subjectOf("team-b", "builder"))
		}
		if pw == passwords["team-a"] || pw == passwords["node"] {
			t.Error("team-b/builder got another account's credentials")
		}
		if p.execs != 1 || p.requests != 1 {
			t.Errorf("execs=%d STS requests=%d, want 1, 1", p.execs, p.requests)
		}
		passwords["team-b"] = pw
	})

	t.Run("service-account mode: no annotation falls back to CHAINGUARD_IDENTITY", func(t *testing.T) {
		p := lookup("team-c", "batch-1", "pod-uid-c-1", "plain")
		pw := p.credential(t)
		checkTokenRequest(t, p, "team-c", "plain", "batch-1", "pod-uid-c-1")
		id, actor := identify(t, pw)
		if id != sandbox.DefaultIdentity || actor != subjectOf("team-c", "plain") {
			t.Errorf("credentials for identity %q from ambient %q, want %q from %q", id, actor, sandbox.DefaultIdentity, subjectOf("team-c", "plain"))
		}
		// Same identity as the node, but the pod's own token: the
		// binary's disk cache must not have answered with the node's.
		if pw == passwords["node"] || p.requests != 1 || p.execs != 1 {
			t.Errorf("team-c/plain: shares the node's token=%v, STS requests=%d, execs=%d; want false, 1, 1", pw == passwords["node"], p.requests, p.execs)
		}
	})

	t.Run("failing STS: no credentials, our reason in the kubelet's log", func(t *testing.T) {
		const reason = "sandbox-fault-7d41: identity suspended by policy"
		env.sb.STS.InjectFaults(sandbox.Fault{Status: 403, Message: reason})
		// A service account the kubelet has no cache entry for.
		p := lookup("team-d", "job-1", "pod-uid-d-1", "failing")
		if p.found || len(p.creds) != 0 {
			t.Errorf("the kubelet got %d credentials from a failing STS, want none", len(p.creds))
		}
		checkTokenRequest(t, p, "team-d", "failing", "job-1", "pod-uid-d-1")
		checks := map[string]bool{
			"plugin ran":                          p.execs == 1,
			"STS was asked once (403 is final)":   p.requests == 1,
			"kubelet logged the plugin failure":   strings.Contains(p.log, failLine),
			"kubelet log has our reason":          strings.Contains(p.log, reason),
			"kubelet log has our program's name":  strings.Contains(p.log, "docker-credential-cgr: "),
			"kubelet log names the 403":           strings.Contains(p.log, "403"),
			"kubelet log has no JWT-shaped value": !jwtLike.MatchString(p.log),
		}
		for what, ok := range checks {
			if !ok {
				t.Errorf("%s: false", what)
			}
		}
		if t.Failed() {
			t.Logf("kubelet log (redacted):\n%s", redact(p.log))
		}

		// The failure was cached neither by the kubelet nor by us.
		p = lookup("team-d", "job-2", "pod-uid-d-2", "failing")
		id, _ := identify(t, p.credential(t))
		if id != sandbox.DefaultIdentity || p.execs != 1 {
			t.Errorf("after the STS recovered: identity %q, execs %d; want %q, 1", id, p.execs, sandbox.DefaultIdentity)
		}
	})

	t.Run("annotation naming an identity the account may not assume", func(t *testing.T) {
		p := lookup("team-e", "evil-1", "pod-uid-e-1", "intruder")
		if p.found || len(p.creds) != 0 {
			t.Errorf("team-e/intruder got %d credentials for %s, want none", len(p.creds), identityA)
		}
		checks := map[string]bool{
			"kubelet logged the plugin failure":     strings.Contains(p.log, failLine),
			"reason names the subject and identity": strings.Contains(p.log, subjectOf("team-e", "intruder")) && strings.Contains(p.log, identityA),
			"our hint names the pod's token":        strings.Contains(p.log, "the pod's service-account token"),
			"kubelet log has no JWT-shaped value":   !jwtLike.MatchString(p.log),
		}
		for what, ok := range checks {
			if !ok {
				t.Errorf("%s: false", what)
			}
		}
		if t.Failed() {
			t.Logf("kubelet log (redacted):\n%s", redact(p.log))
		}
	})

	t.Run("no token ever reaches the kubelet's log", func(t *testing.T) {
		log := env.logs.String()
		leaked := 0
		for _, tok := range env.api.mintedTokens() {
			if strings.Contains(log, tok) {
				leaked++
			}
		}
		for _, pw := range passwords {
			if strings.Contains(log, pw) {
				leaked++
			}
		}
		if leaked > 0 || jwtLike.MatchString(log) {
			t.Errorf("%d tokens appear in the kubelet's log (JWT-shaped text: %v)", leaked, jwtLike.MatchString(log))
		}
	})
}

// childResult is what the second kubelet process reports back, through a
// private file, never on its output.
type childResult struct {
	RegisterErr string        `json:"registerErr,omitempty"`
	Lookups     []childLookup `json:"lookups"`
	APICalls    int           `json:"apiCalls"`
	Log         string        `json:"log"`
}

type childLookup struct {
	Found     bool     `json:"found"`
	Passwords []string `json:"passwords"`
	Usernames []string `json:"usernames"`
}

// runChild is the second kubelet: it registers the config named by the
// environment and, unless CGR_CHILD_REGISTER_ONLY is set, pulls as a pod
// with and without a service account.
func runChild() int {
	out := os.Getenv(childEnv)
	logs := captureKlog()
	var res childResult
	apiCalls := 0
	err := plugin.RegisterCredentialProviderPlugins(os.Getenv("CGR_CHILD_CONFIG"), os.Getenv("CGR_CHILD_BINDIR"),
		func(string, string, *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
			apiCalls++
			return nil, os.ErrPermission
		},
		func(string, string) (*corev1.ServiceAccount, error) {
			apiCalls++
			return nil, os.ErrPermission
		})
	if err != nil {
		res.RegisterErr = err.Error()
	} else if os.Getenv("CGR_CHILD_REGISTER_ONLY") == "" {
		image := os.Getenv("CGR_CHILD_IMAGE")
		for _, pod := range []struct{ ns, name, uid, sa string }{
			{"kube-system", "static-web-node0", "pod-uid-static-1", ""},
			{"team-a", "web-1", "pod-uid-a-1", "builder"},
		} {
			creds, found := plugin.NewExternalCredentialProviderDockerKeyring(pod.ns, pod.name, pod.uid, pod.sa).Lookup(image)
			l := childLookup{Found: found}
			for _, c := range creds {
				l.Passwords = append(l.Passwords, c.Password)
				l.Usernames = append(l.Usernames, c.Username)
			}
			res.Lookups = append(res.Lookups, l)
		}
	}
	klog.Flush()
	res.APICalls = apiCalls
	res.Log = redact(logs.String())
	b, err := json.Marshal(res)
	if err != nil {
		return 2
	}
	if err := os.WriteFile(out, b, 0o600); err != nil {
		return 2
	}
	return 0
}

// TestNodeModeConfigDrivenByKubelet gives a second kubelet (this test
// binary, re-run) configure-kubelet's node-mode config: every pod, with a
// service account or not, pulls as the node's identity.
func TestNodeModeConfigDrivenByKubelet(t *testing.T) {
	dir := t.TempDir()
	res := runBinary([]string{"configure-kubelet", "--mode", "node"}, nil, sandboxEnv(filepath.Join(dir, "cache"))...)
	if res.err != nil {
		t.Fatalf("configure-kubelet --mode node: %v: %s", res.err, redact(string(res.stderr)))
	}
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, res.stdout, 0o600); err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(dir, "result.json")
	requestsBefore := env.sb.STS.Requests()

	cmd := exec.Command(os.Args[0], "-test.run=^$") //nolint:gosec // G702: this test binary itself, re-run as a second kubelet
	cmd.Env = append(os.Environ(),
		childEnv+"="+outFile,
		"CGR_CHILD_CONFIG="+config,
		"CGR_CHILD_BINDIR="+env.binDir,
		"CGR_CHILD_IMAGE="+env.image,
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second kubelet process: %v\n%s", err, redact(string(out)))
	}
	b, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	var got childResult
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.RegisterErr != "" {
		t.Fatalf("the kubelet rejected configure-kubelet's node-mode config: %s", got.RegisterErr)
	}
	if got.APICalls != 0 {
		t.Errorf("node mode: the kubelet asked the API server %d times for service accounts or tokens, want 0", got.APICalls)
	}
	if len(got.Lookups) != 2 {
		t.Fatalf("%d lookups reported, want 2", len(got.Lookups))
	}
	for i, l := range got.Lookups {
		if !l.Found || len(l.Passwords) != 1 || l.Usernames[0] != "_token" {
			t.Fatalf("lookup %d: found=%v, %d credentials; want one _token credential; kubelet log:\n%s", i, l.Found, len(l.Passwords), got.Log)
		}
		id, actor := identify(t, l.Passwords[0])
		if id != sandbox.DefaultIdentity || actor != subjectOf(nodeNamespace, nodeAccount) {
			t.Errorf("lookup %d: identity %q from ambient %q, want %q from the node's %q", i, id, actor, sandbox.DefaultIdentity, subjectOf(nodeNamespace, nodeAccount))
		}
	}
	if got.Lookups[0].Passwords[0] != got.Lookups[1].Passwords[0] {
		t.Error("node mode: the pod with a service account got other credentials than the static pod")
	}
	if n := env.sb.STS.Requests() - requestsBefore; n != 1 {
		t.Errorf("STS requests = %d, want 1 (the second pull is the kubelet's cache)", n)
	}
}

// TestGoldenConfigsKubeletValidation loads every golden config as the
// newest kubelet does at start-up (decode, validate, register; a kubelet
// whose config fails here exits), each in a fresh process since the
// plugin registry is global. Every release's node config and the 1.34+
// service-account configs pass. The 1.33 service-account config lacks
// cacheType, which 1.34+ requires, and must fail for that reason alone:
// 1.33's own validation is this one without the cacheType rule (compare
// pkg/credentialprovider/plugin/config.go at v1.33.13 and v1.37.2), so
// nothing else in it is wrong.
func TestGoldenConfigsKubeletValidation(t *testing.T) {
	for _, v := range cgr.Versions() {
		for _, mode := range []cgr.Mode{cgr.NodeMode, cgr.ServiceAccountMode} {
			file := fmt.Sprintf("config-%s-%s.yaml", mode, v)
			t.Run(file, func(t *testing.T) {
				dir := t.TempDir()
				config := filepath.Join(dir, "config.yaml")
				if err := os.WriteFile(config, golden(t, file), 0o600); err != nil {
					t.Fatal(err)
				}
				outFile := filepath.Join(dir, "result.json")
				cmd := exec.Command(os.Args[0], "-test.run=^$") //nolint:gosec // G702: this test binary itself, re-run as a second kubelet
				cmd.Env = append(os.Environ(),
					childEnv+"="+outFile,
					"CGR_CHILD_CONFIG="+config,
					"CGR_CHILD_BINDIR="+env.binDir,
					"CGR_CHILD_REGISTER_ONLY=1",
				)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("kubelet process: %v\n%s", err, redact(string(out)))
				}
				b, err := os.ReadFile(outFile)
				if err != nil {
					t.Fatal(err)
				}
				var got childResult
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
				if mode == cgr.ServiceAccountMode && v < 34 {
					const want = "tokenAttributes.cacheType: Required value"
					if !strings.Contains(got.RegisterErr, want) || strings.Contains(got.RegisterErr, "[") {
						t.Errorf("the newest kubelet registering the %s config: %q; want exactly one error, %q", v, got.RegisterErr, want)
					} else {
						t.Logf("the newest kubelet refuses the %s service-account config, as it must: %s", v, got.RegisterErr)
					}
					return
				}
				if got.RegisterErr != "" {
					t.Errorf("the newest kubelet refuses %s: %s", file, got.RegisterErr)
				}
			})
		}
	}
}
