package kubelettest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	credentialproviderapi "k8s.io/kubelet/pkg/apis/credentialprovider"
	credentialproviderinstall "k8s.io/kubelet/pkg/apis/credentialprovider/install"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac"
	"sigs.k8s.io/yaml"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	cgr "github.com/cgr-helper/docker-credential-cgr/pkg/kubelet"
)

const (
	providerAPIVersion = "credentialprovider.kubelet.k8s.io/v1"
	configAPIVersion   = "kubelet.config.k8s.io/v1"
	defaultCacheTime   = 55 * time.Minute
)

// decodeStrict decodes one JSON object into v, refusing unknown fields
// and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON object")
	}
	return nil
}

// kubeletDecode decodes a response the way the kubelet does (its
// credential provider scheme's universal decoder), in strict mode, into
// the kubelet's internal type.
func kubeletDecode(data []byte) (*credentialproviderapi.CredentialProviderResponse, error) {
	scheme := runtime.NewScheme()
	credentialproviderinstall.Install(scheme)
	codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
	obj, gvk, err := codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, err
	}
	if gvk.Group != credentialproviderapi.GroupName || gvk.Kind != "CredentialProviderResponse" {
		return nil, fmt.Errorf("decoded a %s", gvk)
	}
	resp, ok := obj.(*credentialproviderapi.CredentialProviderResponse)
	if !ok {
		return nil, fmt.Errorf("decoded a %T", obj)
	}
	return resp, nil
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.root, "pkg", "kubelet", "testdata", name))
	if err != nil {
		t.Fatalf("golden file: %v", err)
	}
	return b
}

func TestGoldenRequests(t *testing.T) {
	for _, tc := range []struct {
		file           string
		serviceAccount bool
	}{
		{"request-node.json", false},
		{"request-service-account.json", true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var req credentialproviderv1.CredentialProviderRequest
			if err := decodeStrict(golden(t, tc.file), &req); err != nil {
				t.Fatalf("not a strict credentialprovider/v1 CredentialProviderRequest: %v", err)
			}
			if req.APIVersion != providerAPIVersion || req.Kind != "CredentialProviderRequest" || req.Image == "" {
				t.Errorf("apiVersion %q kind %q image %q", req.APIVersion, req.Kind, req.Image)
			}
			hasSA := req.ServiceAccountToken != "" && req.ServiceAccountAnnotations[cgr.IdentityAnnotation] != ""
			if hasSA != tc.serviceAccount {
				t.Errorf("carries a service-account token and identity annotation: %v, want %v", hasSA, tc.serviceAccount)
			}
		})
	}
}

func TestGoldenResponses(t *testing.T) {
	for _, tc := range []struct {
		file  string
		creds bool
	}{
		{"response.json", true},
		{"response-not-served.json", false},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data := golden(t, tc.file)
			resp := checkResponse(t, data)
			if got := len(resp.Auth) > 0; got != tc.creds {
				t.Errorf("has credentials: %v, want %v", got, tc.creds)
			}
			if tc.creds {
				if resp.CacheDuration == nil || resp.CacheDuration.Duration != defaultCacheTime {
					t.Errorf("cacheDuration %v, want %s", resp.CacheDuration, defaultCacheTime)
				}
				if a, ok := resp.Auth["cgr.dev"]; !ok || a.Username != "_token" {
					t.Errorf("auth = %v, want cgr.dev with username _token", resp.Auth)
				}
			} else if resp.CacheDuration != nil {
				t.Errorf("a response without credentials has cacheDuration %s", resp.CacheDuration.Duration)
			}
		})
	}
}

// checkResponse decodes a response strictly, with the v1 types and with
// the kubelet's codec, and checks what every response must carry.
func checkResponse(t *testing.T, data []byte) credentialproviderv1.CredentialProviderResponse {
	t.Helper()
	var resp credentialproviderv1.CredentialProviderResponse
	if err := decodeStrict(data, &resp); err != nil {
		t.Fatalf("not a strict credentialprovider/v1 CredentialProviderResponse: %v", err)
	}
	if resp.APIVersion != providerAPIVersion || resp.Kind != "CredentialProviderResponse" {
		t.Errorf("apiVersion %q kind %q", resp.APIVersion, resp.Kind)
	}
	if resp.CacheKeyType != credentialproviderv1.RegistryPluginCacheKeyType {
		t.Errorf("cacheKeyType %q, want Registry", resp.CacheKeyType)
	}
	internal, err := kubeletDecode(data)
	if err != nil {
		t.Fatalf("the kubelet's strict codec rejects it: %v", err)
	}
	if internal.CacheKeyType != credentialproviderapi.RegistryPluginCacheKeyType || len(internal.Auth) != len(resp.Auth) {
		t.Errorf("the kubelet's codec read cacheKeyType %q and %d auth entries", internal.CacheKeyType, len(internal.Auth))
	}
	return resp
}

// TestLiveKubeletSubcommand runs the built binary's kubelet subcommand as
// the kubelet would, with requests encoded from the v1 types, against the
// sandbox, and decodes its stdout strictly.
func TestLiveKubeletSubcommand(t *testing.T) {
	cacheDir := t.TempDir()
	run := func(t *testing.T, req credentialproviderv1.CredentialProviderRequest) result {
		t.Helper()
		req.APIVersion, req.Kind = providerAPIVersion, "CredentialProviderRequest"
		in, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		return runBinary([]string{"kubelet"}, in, sandboxEnv(cacheDir)...)
	}
	// ok checks a successful answer: one JSON object on stdout and a
	// quiet stderr.
	ok := func(t *testing.T, res result) credentialproviderv1.CredentialProviderResponse {
		t.Helper()
		if res.err != nil {
			t.Fatalf("exit %v; stderr: %s", res.err, redact(string(res.stderr)))
		}
		if len(res.stderr) != 0 {
			t.Errorf("stderr not empty: %s", redact(string(res.stderr)))
		}
		if bytes.Count(res.stdout, []byte("\n")) != 1 || !bytes.HasSuffix(res.stdout, []byte("}\n")) {
			t.Error("stdout is not exactly one JSON line")
		}
		return checkResponse(t, res.stdout)
	}
	// creds checks the response has our credentials for the sandbox
	// registry and returns the identity and ambient subject behind them.
	creds := func(t *testing.T, resp credentialproviderv1.CredentialProviderResponse) (string, string) {
		t.Helper()
		if len(resp.Auth) != 1 {
			t.Fatalf("%d auth entries, want 1", len(resp.Auth))
		}
		a, found := resp.Auth[env.host]
		if !found {
			t.Fatal("auth is not keyed by the image's registry host, port included")
		}
		if a.Username != "_token" {
			t.Errorf("username %q", a.Username)
		}
		// A fresh one-hour token, less the five-minute margin.
		if d := resp.CacheDuration; d == nil || d.Duration <= 50*time.Minute || d.Duration > defaultCacheTime {
			t.Errorf("cacheDuration %v, want the token's life left minus 5m", d)
		}
		return identify(t, a.Password)
	}

	t.Run("node", func(t *testing.T) {
		id, actor := creds(t, ok(t, run(t, credentialproviderv1.CredentialProviderRequest{Image: env.image})))
		if id != sandbox.DefaultIdentity || actor != subjectOf(nodeNamespace, nodeAccount) {
			t.Errorf("identity %q from %q", id, actor)
		}
	})

	t.Run("service account", func(t *testing.T) {
		tok, err := env.sb.Issuer.MintServiceAccountToken("wire", "probe")
		if err != nil {
			t.Fatal(err)
		}
		id, actor := creds(t, ok(t, run(t, credentialproviderv1.CredentialProviderRequest{
			Image:                     env.image,
			ServiceAccountToken:       tok,
			ServiceAccountAnnotations: map[string]string{cgr.IdentityAnnotation: identityWire},
		})))
		if id != identityWire || actor != subjectOf("wire", "probe") {
			t.Errorf("identity %q from %q", id, actor)
		}
	})

	t.Run("registry not served", func(t *testing.T) {
		resp := ok(t, run(t, credentialproviderv1.CredentialProviderRequest{Image: "registry.example.com/team/app:1"}))
		if len(resp.Auth) != 0 || resp.CacheDuration != nil {
			t.Errorf("%d auth entries, cacheDuration %v; want none", len(resp.Auth), resp.CacheDuration)
		}
	})

	t.Run("service-account token for another audience", func(t *testing.T) {
		tok, err := env.sb.Issuer.MintServiceAccountToken("wire", "probe", sandbox.WithAudience("https://kubernetes.default.svc"))
		if err != nil {
			t.Fatal(err)
		}
		res := run(t, credentialproviderv1.CredentialProviderRequest{Image: env.image, ServiceAccountToken: tok})
		checkFailure(t, res, sandbox.EnforceAudience)
		if strings.Contains(string(res.stderr), tok) {
			t.Error("stderr shows the token")
		}
	})

	t.Run("not a request", func(t *testing.T) {
		checkFailure(t, runBinary([]string{"kubelet"}, []byte(`{"kind":"Pod"}`), sandboxEnv(cacheDir)...), "CredentialProviderRequest")
	})
}

// checkFailure checks a failure: exit 1, nothing on stdout, one line on
// stderr that says want.
func checkFailure(t *testing.T, res result, want string) {
	t.Helper()
	stderr := string(res.stderr)
	if res.code != 1 || len(res.stdout) != 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, %d bytes on stdout, stderr %q; want exit 1, no stdout, one line mentioning %q", res.code, len(res.stdout), redact(stderr), want)
	}
}

// decodeConfig decodes a CredentialProviderConfig strictly (YAML to JSON,
// duplicate keys and unknown fields refused).
func decodeConfig(t *testing.T, data []byte) kubeletconfigv1.CredentialProviderConfig {
	t.Helper()
	var cfg kubeletconfigv1.CredentialProviderConfig
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		t.Fatalf("not a strict kubelet.config.k8s.io/v1 CredentialProviderConfig: %v", err)
	}
	if cfg.APIVersion != configAPIVersion || cfg.Kind != "CredentialProviderConfig" {
		t.Errorf("apiVersion %q kind %q", cfg.APIVersion, cfg.Kind)
	}
	if len(cfg.Providers) != 1 {
		t.Fatalf("%d providers, want 1", len(cfg.Providers))
	}
	p := cfg.Providers[0]
	if p.Name != cgr.ProviderName || p.APIVersion != providerAPIVersion {
		t.Errorf("provider %q apiVersion %q", p.Name, p.APIVersion)
	}
	if !reflect.DeepEqual(p.Args, []string{"kubelet"}) {
		t.Errorf("args %q, want [kubelet]", p.Args)
	}
	if p.DefaultCacheDuration == nil || p.DefaultCacheDuration.Duration != defaultCacheTime {
		t.Errorf("defaultCacheDuration %v, want %s", p.DefaultCacheDuration, defaultCacheTime)
	}
	return cfg
}

func envOf(p kubeletconfigv1.CredentialProvider) map[string]string {
	m := map[string]string{}
	for _, e := range p.Env {
		m[e.Name] = e.Value
	}
	return m
}

// checkTokenAttributes checks the service-account mode settings, for the
// newest kubelet.
func checkTokenAttributes(t *testing.T, p kubeletconfigv1.CredentialProvider, serviceAccountMode bool) {
	t.Helper()
	checkTokenAttributesFor(t, p, serviceAccountMode, cgr.NewestVersion)
}

// checkTokenAttributesFor checks the service-account mode settings written
// for kubelet v: 1.33 has no cacheType.
func checkTokenAttributesFor(t *testing.T, p kubeletconfigv1.CredentialProvider, serviceAccountMode bool, v cgr.Version) {
	t.Helper()
	ta := p.TokenAttributes
	if !serviceAccountMode {
		if ta != nil {
			t.Errorf("node mode has tokenAttributes %+v", *ta)
		}
		return
	}
	if ta == nil {
		t.Fatal("no tokenAttributes")
	}
	if ta.ServiceAccountTokenAudience != sandbox.EnforceAudience {
		t.Errorf("serviceAccountTokenAudience %q", ta.ServiceAccountTokenAudience)
	}
	if ta.RequireServiceAccount == nil || *ta.RequireServiceAccount {
		t.Errorf("requireServiceAccount %v, want false", ta.RequireServiceAccount)
	}
	if len(ta.RequiredServiceAccountAnnotationKeys) != 0 || !reflect.DeepEqual(ta.OptionalServiceAccountAnnotationKeys, []string{cgr.IdentityAnnotation}) {
		t.Errorf("required annotations %q, optional %q; want none, [%s]", ta.RequiredServiceAccountAnnotationKeys, ta.OptionalServiceAccountAnnotationKeys, cgr.IdentityAnnotation)
	}
	wantCache := kubeletconfigv1.ServiceAccountServiceAccountTokenCacheType
	if v < 34 {
		wantCache = ""
	}
	if ta.CacheType != wantCache {
		t.Errorf("kubelet %s: cacheType %q, want %q", v, ta.CacheType, wantCache)
	}
}

// TestLiveConfigureKubelet decodes what the built binary prints, in both
// modes, with the settings the kubelet test uses.
func TestLiveConfigureKubelet(t *testing.T) {
	for _, mode := range []string{"node", "service-account"} {
		t.Run(mode, func(t *testing.T) {
			cacheDir := filepath.Join(t.TempDir(), "cache")
			res := runBinary([]string{"configure-kubelet", "--mode", mode}, nil, sandboxEnv(cacheDir)...)
			if res.err != nil {
				t.Fatalf("%v: %s", res.err, res.stderr)
			}
			p := decodeConfig(t, res.stdout).Providers[0]
			if !reflect.DeepEqual(p.MatchImages, []string{env.host}) {
				t.Errorf("matchImages %q, want [%s]", p.MatchImages, env.host)
			}
			want := map[string]string{
				"CHAINGUARD_REGISTRY":       env.host,
				"CHAINGUARD_ISSUER":         env.sb.STS.URL(),
				"CHAINGUARD_IDENTITY":       sandbox.DefaultIdentity,
				"CHAINGUARD_IDENTITY_TOKEN": env.nodeTokenFile,
				"CHAINGUARD_CACHE_DIR":      cacheDir,
			}
			if got := envOf(p); !reflect.DeepEqual(got, want) {
				t.Errorf("env %v, want %v", got, want)
			}
			checkTokenAttributes(t, p, mode == "service-account")
			if mode == "service-account" {
				// The RBAC goes to stderr, stdout staying one document.
				checkRBAC(t, res.stderr)
			} else if len(res.stderr) != 0 {
				t.Errorf("node mode stderr: %s", res.stderr)
			}
		})
	}
	t.Run("the config the kubelet test registered", func(t *testing.T) {
		p := decodeConfig(t, env.saConfig).Providers[0]
		checkTokenAttributes(t, p, true)
	})
}

// TestGoldenConfigs decodes the golden configs strictly (with the newest
// kubelet's types, which every release's config fits), and checks the
// built binary prints what they say for the same settings.
func TestGoldenConfigs(t *testing.T) {
	for _, v := range cgr.Versions() {
		for _, mode := range []cgr.Mode{cgr.NodeMode, cgr.ServiceAccountMode} {
			file := fmt.Sprintf("config-%s-%s.yaml", mode, v)
			t.Run(file, func(t *testing.T) {
				want := decodeConfig(t, golden(t, file))
				p := want.Providers[0]
				if !reflect.DeepEqual(p.MatchImages, []string{"cgr.dev", "*.cgr.dev"}) {
					t.Errorf("matchImages %q, want cgr.dev and *.cgr.dev", p.MatchImages)
				}
				checkTokenAttributesFor(t, p, mode == cgr.ServiceAccountMode, v)

				args := []string{"configure-kubelet", "--mode", string(mode), "--kubelet-version", v.String()}
				res := runBinary(args, nil, "CHAINGUARD_IDENTITY=<identity id>")
				if res.err != nil {
					t.Fatalf("%v: %s", res.err, res.stderr)
				}
				if got := decodeConfig(t, res.stdout); !reflect.DeepEqual(got, want) {
					t.Errorf("the binary prints\n%s\nwhich differs from the golden file", res.stdout)
				}
			})
		}
	}
	t.Run("rbac.yaml", func(t *testing.T) {
		checkRBAC(t, golden(t, "rbac.yaml"))
		res := runBinary([]string{"configure-kubelet", "--rbac"}, nil)
		if res.err != nil {
			t.Fatalf("%v: %s", res.err, res.stderr)
		}
		checkRBAC(t, res.stdout)
		if !bytes.Equal(res.stdout, golden(t, "rbac.yaml")) {
			t.Error("configure-kubelet --rbac differs from rbac.yaml")
		}
	})
}

// checkRBAC decodes the two RBAC documents strictly and asks the real RBAC
// authorizer the question the NodeRestriction admission plugin asks when a
// kubelet requests a service-account token for the STS audience.
func checkRBAC(t *testing.T, data []byte) {
	t.Helper()
	docs := strings.Split(string(data), "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("%d YAML documents, want 2", len(docs))
	}
	var role rbacv1.ClusterRole
	var binding rbacv1.ClusterRoleBinding
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &role); err != nil {
		t.Fatalf("not a strict rbac/v1 ClusterRole: %v", err)
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &binding); err != nil {
		t.Fatalf("not a strict rbac/v1 ClusterRoleBinding: %v", err)
	}
	if role.APIVersion != "rbac.authorization.k8s.io/v1" || role.Kind != "ClusterRole" ||
		binding.APIVersion != "rbac.authorization.k8s.io/v1" || binding.Kind != "ClusterRoleBinding" {
		t.Errorf("kinds %s %s, %s %s", role.APIVersion, role.Kind, binding.APIVersion, binding.Kind)
	}
	wantRules := []rbacv1.PolicyRule{{
		APIGroups: []string{""},
		Resources: []string{sandbox.EnforceAudience},
		Verbs:     []string{"request-serviceaccounts-token-audience"},
	}}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("rules %+v, want %+v", role.Rules, wantRules)
	}
	wantRef := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name}
	wantSubjects := []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:nodes"}}
	if role.Name == "" || binding.RoleRef != wantRef || !reflect.DeepEqual(binding.Subjects, wantSubjects) {
		t.Errorf("binding %s: roleRef %+v subjects %+v; want %+v, %+v", binding.Name, binding.RoleRef, binding.Subjects, wantRef, wantSubjects)
	}

	state := staticRBAC{&role, &binding}
	authz := rbac.New(state, state, state, state)
	node := &user.DefaultInfo{Name: "system:node:node-0", Groups: []string{"system:nodes", "system:authenticated"}}
	for _, tc := range []struct {
		who      user.Info
		audience string
		allow    bool
	}{
		{node, sandbox.EnforceAudience, true},
		{node, "https://kubernetes.default.svc", false},
		{&user.DefaultInfo{Name: "alice", Groups: []string{"system:authenticated"}}, sandbox.EnforceAudience, false},
	} {
		// As plugin/pkg/admission/noderestriction builds it.
		attrs := authorizer.AttributesRecord{
			User:            tc.who,
			Verb:            "request-serviceaccounts-token-audience",
			Namespace:       "team-a",
			APIGroup:        "",
			APIVersion:      "v1",
			Resource:        tc.audience,
			Name:            "builder",
			ResourceRequest: true,
		}
		decision, _, _ := authz.Authorize(context.Background(), attrs)
		if got := decision == authorizer.DecisionAllow; got != tc.allow {
			t.Errorf("%s requesting a token for %s: allowed=%v, want %v", tc.who.GetName(), tc.audience, got, tc.allow)
		}
	}
}

// staticRBAC is the cluster's RBAC state for the authorizer: one
// ClusterRole and one ClusterRoleBinding.
type staticRBAC struct {
	role    *rbacv1.ClusterRole
	binding *rbacv1.ClusterRoleBinding
}

func (staticRBAC) GetRole(_ context.Context, _, name string) (*rbacv1.Role, error) {
	return nil, fmt.Errorf("role %q not found", name)
}

func (staticRBAC) ListRoleBindings(context.Context, string) ([]*rbacv1.RoleBinding, error) {
	return nil, nil
}

func (s staticRBAC) GetClusterRole(_ context.Context, name string) (*rbacv1.ClusterRole, error) {
	if s.role.Name != name {
		return nil, fmt.Errorf("clusterrole %q not found", name)
	}
	return s.role, nil
}

func (s staticRBAC) ListClusterRoleBindings(context.Context) ([]*rbacv1.ClusterRoleBinding, error) {
	return []*rbacv1.ClusterRoleBinding{s.binding}, nil
}
