package kubelettest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/credentialprovider/plugin"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	cgr "github.com/cgr-helper/docker-credential-cgr/pkg/kubelet"
)

// Identities the sandbox STS gets besides sandbox.DefaultIdentity, each
// assumable by exactly one service account.
const (
	identityA = "identity-a"
	identityB = "identity-b"
	// identityWire is for the live wire tests, which run the binary
	// directly, so they never touch the subjects the kubelet tests use.
	identityWire = "identity-wire"

	// nodeNamespace/nodeAccount is the subject of the node's ambient token.
	nodeNamespace = "kube-system"
	nodeAccount   = "node-puller"
)

// env is the world every test shares: one binary, one sandbox, and the
// kubelet's plugin registry, which is global and registered once.
var env struct {
	root   string // repository root
	tmp    string
	binDir string // the kubelet's --image-credential-provider-bin-dir
	bin    string // binDir/docker-credential-cgr

	sb    *sandbox.Sandbox
	host  string // the sandbox registry, 127.0.0.1:PORT
	image string // an image on it

	nodeTokenFile string // the node's ambient token, for CHAINGUARD_IDENTITY_TOKEN

	// The service-account mode configuration the kubelet was given, as
	// configure-kubelet printed it, and what registering it returned.
	saConfig    []byte
	saConfigErr []byte // configure-kubelet's stderr: the RBAC
	registerErr error

	api  *fakeAPI
	logs *syncBuffer // everything klog wrote
}

// childEnv makes the test binary act as a second kubelet (see
// TestNodeModeConfigDrivenByKubelet): the plugin registry is per process.
const childEnv = "CGR_KUBELET_TEST_CHILD"

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	defer teardown()
	start := time.Now()
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "test/kubelet setup:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "test/kubelet: setup (build, sandbox, configure, register) took %s\n", time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}

func setup() error {
	var err error
	if env.root, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		return err
	}
	if env.tmp, err = os.MkdirTemp("", "cgr-kubelet-test-"); err != nil {
		return err
	}
	env.binDir = filepath.Join(env.tmp, "bin")
	env.bin = filepath.Join(env.binDir, cgr.ProviderName)

	// Built from the repository root, so it links exactly the product
	// module's dependency versions, not this module's.
	build := exec.Command("go", "build", "-o", env.bin, "./cmd/docker-credential-cgr")
	build.Dir = env.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}

	// The plugin runs with the kubelet's (this process's) environment plus
	// the config's env entries: nothing of the caller's may leak into it,
	// nor may a developer's own config file. After the build, so that the
	// go command still saw its own settings.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CHAINGUARD_") || strings.HasPrefix(name, "ACTIONS_ID_TOKEN_REQUEST_") {
			_ = os.Unsetenv(name)
		}
	}
	if err := os.Setenv("XDG_CONFIG_HOME", filepath.Join(env.tmp, "xdg-config")); err != nil {
		return err
	}

	if env.sb, err = sandbox.Start(); err != nil {
		return err
	}
	env.host = env.sb.Registry.Host()
	env.image = env.host + "/chainguard/static:latest"
	iss := env.sb.Issuer.URL()
	env.sb.STS.AddIdentity(identityA, sandbox.Identity{Issuer: iss, SubjectPattern: "system:serviceaccount:team-a:builder"})
	env.sb.STS.AddIdentity(identityB, sandbox.Identity{Issuer: iss, SubjectPattern: "system:serviceaccount:team-b:builder"})
	env.sb.STS.AddIdentity(identityWire, sandbox.Identity{Issuer: iss, SubjectPattern: "system:serviceaccount:wire:probe"})

	node, err := env.sb.Issuer.MintServiceAccountToken(nodeNamespace, nodeAccount)
	if err != nil {
		return err
	}
	env.nodeTokenFile = filepath.Join(env.tmp, "node-token")
	if err := os.WriteFile(env.nodeTokenFile, []byte(node), 0o600); err != nil {
		return err
	}

	env.api = newFakeAPI(env.sb.Issuer)
	env.logs = captureKlog()

	// The configuration is whatever the binary itself prints.
	res := runBinary([]string{"configure-kubelet", "--mode", "service-account"}, nil, sandboxEnv(filepath.Join(env.tmp, "kubelet-cache"))...)
	if res.err != nil {
		return fmt.Errorf("configure-kubelet --mode service-account: %w: %s", res.err, res.stderr)
	}
	env.saConfig, env.saConfigErr = res.stdout, res.stderr
	configPath := filepath.Join(env.tmp, "credential-provider-config.yaml")
	if err := os.WriteFile(configPath, env.saConfig, 0o600); err != nil {
		return err
	}
	// Exactly what the kubelet does at start-up, once per process.
	env.registerErr = plugin.RegisterCredentialProviderPlugins(configPath, env.binDir, env.api.getServiceAccountToken, env.api.getServiceAccount)
	return nil
}

func teardown() {
	klog.Flush()
	if env.sb != nil {
		env.sb.Close()
	}
	if env.tmp != "" {
		_ = os.RemoveAll(env.tmp)
	}
}

// sandboxEnv is the environment configure-kubelet is run with: the node's
// settings against the sandbox. They end up in the config's env entries.
func sandboxEnv(cacheDir string) []string {
	return []string{
		"CHAINGUARD_REGISTRY=" + env.host,
		"CHAINGUARD_ISSUER=" + env.sb.STS.URL(),
		"CHAINGUARD_IDENTITY=" + sandbox.DefaultIdentity,
		"CHAINGUARD_IDENTITY_TOKEN=" + env.nodeTokenFile,
		"CHAINGUARD_CACHE_DIR=" + cacheDir,
	}
}

type result struct {
	stdout, stderr []byte
	err            error
	code           int
}

// runBinary runs the built binary with stdin and extra environment
// variables on top of the (sanitized) test environment.
func runBinary(args []string, stdin []byte, extraEnv ...string) result {
	cmd := exec.Command(env.bin, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.Bytes(), stderr: stderr.Bytes(), err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.code = ee.ExitCode()
	}
	return res
}

// fakeAPI plays the kubelet's API server client: service accounts and
// the TokenRequest subresource, with tokens minted by the sandbox issuer.
type fakeAPI struct {
	issuer *sandbox.Issuer

	mu       sync.Mutex
	accounts map[string]*corev1.ServiceAccount // "namespace/name"
	tokens   []tokenCall
	saGets   []string
	minted   []string // every token handed out, to prove none is logged
}

type tokenCall struct {
	namespace, name string
	request         authenticationv1.TokenRequest
}

func newFakeAPI(issuer *sandbox.Issuer) *fakeAPI {
	a := &fakeAPI{issuer: issuer, accounts: map[string]*corev1.ServiceAccount{}}
	annotated := func(id string) map[string]string { return map[string]string{cgr.IdentityAnnotation: id} }
	a.add("team-a", "builder", annotated(identityA))
	a.add("team-b", "builder", annotated(identityB))
	// Other annotations are not the plugin's business: the kubelet passes
	// only the keys the config names.
	a.add("team-c", "plain", map[string]string{"example.com/owner": "team-c"})
	a.add("team-d", "failing", nil)
	a.add("team-d", "recovering", nil)
	// Names an identity whose subject pattern it does not match.
	a.add("team-e", "intruder", annotated(identityA))
	return a
}

func (a *fakeAPI) add(ns, name string, annotations map[string]string) {
	a.accounts[ns+"/"+name] = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Namespace:   ns,
		Name:        name,
		UID:         types.UID(fmt.Sprintf("sa-uid-%s-%s", ns, name)),
		Annotations: annotations,
	}}
}

func (a *fakeAPI) uid(ns, name string) string { return "sa-uid-" + ns + "-" + name }

// getServiceAccount is the kubelet's GetServiceAccountFunc.
func (a *fakeAPI) getServiceAccount(ns, name string) (*corev1.ServiceAccount, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.saGets = append(a.saGets, ns+"/"+name)
	sa, ok := a.accounts[ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(corev1.Resource("serviceaccounts"), name)
	}
	return sa.DeepCopy(), nil
}

// getServiceAccountToken is the kubelet's token getter: a real token from
// the cluster's issuer, for the audience the TokenRequest asks.
func (a *fakeAPI) getServiceAccountToken(ns, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	a.mu.Lock()
	a.tokens = append(a.tokens, tokenCall{namespace: ns, name: name, request: *tr.DeepCopy()})
	a.mu.Unlock()
	aud := tr.Spec.Audiences
	if len(aud) == 0 {
		aud = []string{"https://kubernetes.default.svc"} // the API server's own
	}
	tok, err := a.issuer.MintServiceAccountToken(ns, name, sandbox.WithAudience(aud...))
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.minted = append(a.minted, tok)
	a.mu.Unlock()
	out := tr.DeepCopy()
	out.Status = authenticationv1.TokenRequestStatus{Token: tok, ExpirationTimestamp: metav1.NewTime(time.Now().Add(time.Hour))}
	return out, nil
}

func (a *fakeAPI) tokenCalls() []tokenCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]tokenCall(nil), a.tokens...)
}

func (a *fakeAPI) mintedTokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.minted...)
}

// syncBuffer is klog's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String flushes klog and returns everything logged so far.
func (s *syncBuffer) String() string {
	klog.Flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// captureKlog sends all of klog's output, once per message, to a buffer
// and nowhere else; -v=5 keeps the plugin code's "Getting image credentials
// from external exec plugin" line, which counts executions.
func captureKlog() *syncBuffer {
	flags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(flags)
	for name, value := range map[string]string{
		"logtostderr":     "false",
		"alsologtostderr": "false",
		"stderrthreshold": "FATAL",
		"one_output":      "true",
		"v":               "5",
	} {
		if err := flags.Set(name, value); err != nil {
			panic(err)
		}
	}
	buf := &syncBuffer{}
	klog.SetOutput(buf)
	return buf
}

// jwtLike matches anything shaped like a JWT, for asserting that a log
// holds none.
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)

// redact hides every run that starts like a JWT, whole or cut, before a
// log is shown on failure.
func redact(s string) string { return logsafe.RedactJWTs(s) }

// tokenClaims reads the claims of a registry token the STS issued (after
// STS.VerifyToken has checked it): "act" names the ambient token that was
// exchanged for it.
type tokenClaims struct {
	Subject string `json:"sub"`
	Act     struct {
		Issuer  string `json:"iss"`
		Subject string `json:"sub"`
	} `json:"act"`
}

// identify verifies a registry token with the sandbox STS and returns the
// identity it was issued for and the subject of the ambient token that was
// exchanged for it. It never shows the token.
func identify(t *testing.T, password string) (identity, actor string) {
	t.Helper()
	sub, err := env.sb.STS.VerifyToken(password, sandbox.RegistryAudience)
	if err != nil {
		t.Fatalf("the password is not a registry token the STS issued for audience %s: %v", sandbox.RegistryAudience, redact(err.Error()))
	}
	parts := strings.Split(password, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("registry token payload: %v", err)
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("registry token claims: %v", err)
	}
	if c.Act.Issuer != env.sb.Issuer.URL() {
		t.Errorf("the ambient token exchanged was not from the cluster issuer: act.iss = %q", c.Act.Issuer)
	}
	return sub, c.Act.Subject
}

func subjectOf(ns, sa string) string { return "system:serviceaccount:" + ns + ":" + sa }
