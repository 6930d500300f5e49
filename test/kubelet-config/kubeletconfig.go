// Package kubeletconfig drives the per-release modules beside it: each one
// hands Run a strict decoder built on its own release's k8s.io/kubelet
// config/v1 types, and Run feeds it every config configure-kubelet writes
// for that release (live from the built binary, and the golden files), then
// checks what the decoder made of them. StrictDecoder builds the decoder
// from the release types a module passes in; the module picks the versions.
package kubeletconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Decoder decodes a CredentialProviderConfig strictly with one release's
// types and returns it as JSON (the types marshalled again), or the
// decoding error.
type Decoder func(data []byte) ([]byte, error)

const (
	providerName = "docker-credential-cgr"
	// newest is the release configure-kubelet writes for by default.
	newest = 37
)

// binary is the built docker-credential-cgr; see Main.
var binary string

// Main builds the binary, runs the tests, and removes the binary.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "cgr-kubelet-config-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binary = filepath.Join(dir, providerName)
	code := 2
	if err := build(binary); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// root is the repository root: the folder three levels up from a version
// module (test/kubelet-config/v1_NN).
func root() (string, error) {
	dir, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod")) //nolint:gosec // G304: the repository's own go.mod
	if err != nil || !bytes.HasPrefix(b, []byte("module github.com/cgr-helper/docker-credential-cgr\n")) {
		return "", fmt.Errorf("%s is not the repository root; run the tests from their own module folder", dir)
	}
	return dir, nil
}

func build(out string) error {
	dir, err := root()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/docker-credential-cgr") //nolint:gosec // G204: out is our own temporary file
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the binary: %w\n%s", err, b)
	}
	return nil
}

// config is one config to decode.
type config struct {
	name  string // where it came from
	minor int    // the release it was written for
	mode  string // node or service-account
	want  settings
	data  []byte
}

// settings are what a config must say beyond the fixed parts.
type settings struct {
	matchImages []string
	env         map[string]string
}

// defaults is what the golden files were written with.
var defaults = settings{
	matchImages: []string{"cgr.dev", "*.cgr.dev"},
	env:         map[string]string{"CHAINGUARD_IDENTITY": "<identity id>", "CHAINGUARD_CACHE_DIR": "/var/cache/docker-credential-cgr"},
}

// live has every setting given, half as flags and half as environment
// variables.
var live = struct {
	args []string
	env  []string
	want settings
}{
	args: []string{"--identity", "live-identity", "--issuer", "https://sts.example.com", "--registry", "registry.example.com:5000,*.example.org"},
	env:  []string{"CHAINGUARD_IDENTITY_TOKEN=/var/run/node/token", "CHAINGUARD_AUDIENCE=registry.example.com", "CHAINGUARD_CACHE_DIR=/srv/cgr-cache"},
	want: settings{
		matchImages: []string{"registry.example.com:5000", "*.example.org"},
		env: map[string]string{ //nolint:gosec // G101: setting names and made-up values, no credential
			"CHAINGUARD_IDENTITY":       "live-identity",
			"CHAINGUARD_IDENTITY_TOKEN": "/var/run/node/token",
			"CHAINGUARD_ISSUER":         "https://sts.example.com",
			"CHAINGUARD_AUDIENCE":       "registry.example.com",
			"CHAINGUARD_REGISTRY":       "registry.example.com:5000,*.example.org",
			"CHAINGUARD_CACHE_DIR":      "/srv/cgr-cache",
		},
	},
}

// configure runs configure-kubelet with a clean environment plus env.
func configure(args, env []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"configure-kubelet"}, args...)...) //nolint:gosec // G204: the binary under test, built by Main
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("configure-kubelet %s: %w: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// configsFor collects the configs written for release minor: the two
// golden files, the binary's live output for both modes, and for the
// newest release also the output with no --kubelet-version.
func configsFor(minor int) ([]config, error) {
	dir, err := root()
	if err != nil {
		return nil, err
	}
	var cs []config
	for _, mode := range []string{"node", "service-account"} {
		version := fmt.Sprintf("1.%d", minor)
		name := fmt.Sprintf("config-%s-%s.yaml", mode, version)
		b, err := os.ReadFile(filepath.Join(dir, "pkg", "kubelet", "testdata", name)) //nolint:gosec // G304: a golden file of the repository
		if err != nil {
			return nil, err
		}
		cs = append(cs, config{"golden " + name, minor, mode, defaults, b})

		args := append([]string{"--mode", mode, "--kubelet-version", version}, live.args...)
		if b, err = configure(args, live.env); err != nil {
			return nil, err
		}
		cs = append(cs, config{"configure-kubelet " + strings.Join(args[:4], " "), minor, mode, live.want, b})
		if minor == newest {
			if b, err = configure([]string{"--mode", mode}, []string{"CHAINGUARD_IDENTITY=<identity id>"}); err != nil {
				return nil, err
			}
			cs = append(cs, config{"configure-kubelet --mode " + mode + " (default release)", minor, mode, defaults, b})
		}
	}
	return cs, nil
}

// Run is the whole test for the release 1.minor, whose k8s.io/kubelet
// module the caller's decode is built with.
func Run(t *testing.T, minor int, decode Decoder) {
	t.Run("built with k8s.io/kubelet of the release", func(t *testing.T) {
		checkModule(t, minor)
	})
	cs, err := configsFor(minor)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			got, err := decode(c.data)
			if err != nil {
				t.Fatalf("kubelet 1.%d refuses it: %v\n%s", minor, err, c.data)
			}
			check(t, c, got)
		})
	}

	// The decoder must refuse what the kubelet refuses, or passing proves
	// nothing: an unknown field, at the top and inside tokenAttributes.
	t.Run("an unknown field is refused", func(t *testing.T) {
		sa := cs[len(cs)-1].data
		for _, bad := range [][]byte{
			append(bytes.Clone(sa), "    bogusField: true\n"...),
			bytes.Replace(sa, []byte("kind: CredentialProviderConfig\n"), []byte("kind: CredentialProviderConfig\nbogusField: true\n"), 1),
		} {
			if _, err := decode(bad); !refusedByBoth(err, "bogusField") {
				t.Errorf("decoding a config with an unknown field: %v; want both decoders to refuse it, naming it", err)
			}
		}
	})
}

// RefuseNewer checks that release minor's decoder refuses the newest
// release's service-account config (golden and live), naming field: the
// proof that these tests tell releases apart.
func RefuseNewer(t *testing.T, minor int, decode Decoder, field string) {
	dir, err := root()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("config-service-account-1.%d.yaml", newest)
	golden, err := os.ReadFile(filepath.Join(dir, "pkg", "kubelet", "testdata", name)) //nolint:gosec // G304: a golden file of the repository
	if err != nil {
		t.Fatal(err)
	}
	liveOut, err := configure([]string{"--mode", "service-account"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for what, data := range map[string][]byte{name: golden, "configure-kubelet --mode service-account (default release)": liveOut} {
		_, err := decode(data)
		if !refusedByBoth(err, field) {
			t.Errorf("kubelet 1.%d decoding %s: %v; want both decoders to refuse it as an unknown field %q", minor, what, err, field)
		} else {
			t.Logf("kubelet 1.%d refuses %s, as it must: %v", minor, what, err)
		}
	}
}

// checkModule checks the module resolves k8s.io/kubelet to v0.minor.x, so
// a dependency bump cannot make two modules test the same release. (A test
// binary's build info lists no dependencies, so the go command is asked.)
func checkModule(t *testing.T, minor int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}", "k8s.io/kubelet").Output()
	if err != nil {
		t.Fatalf("go list -m k8s.io/kubelet: %v", err)
	}
	v := strings.TrimSpace(string(out))
	if !strings.HasPrefix(v, fmt.Sprintf("v0.%d.", minor)) {
		t.Fatalf("built with k8s.io/kubelet %s, want v0.%d.x", v, minor)
	}
	t.Logf("k8s.io/kubelet %s", v)
}

// check compares the decoded config, as JSON, with what it must say.
func check(t *testing.T, c config, decoded []byte) {
	t.Helper()
	var cfg struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Providers  []struct {
			Name                 string   `json:"name"`
			APIVersion           string   `json:"apiVersion"`
			MatchImages          []string `json:"matchImages"`
			DefaultCacheDuration string   `json:"defaultCacheDuration"`
			Args                 []string `json:"args"`
			Env                  []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"env"`
			TokenAttributes map[string]any `json:"tokenAttributes"`
		} `json:"providers"`
	}
	dec := json.NewDecoder(bytes.NewReader(decoded))
	dec.DisallowUnknownFields() // the types must not hold more than we check
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("reading the decoded config: %v\n%s", err, decoded)
	}
	if cfg.APIVersion != "kubelet.config.k8s.io/v1" || cfg.Kind != "CredentialProviderConfig" {
		t.Errorf("apiVersion %q kind %q", cfg.APIVersion, cfg.Kind)
	}
	if len(cfg.Providers) != 1 {
		t.Fatalf("%d providers, want 1", len(cfg.Providers))
	}
	p := cfg.Providers[0]
	if p.Name != providerName || p.APIVersion != "credentialprovider.kubelet.k8s.io/v1" {
		t.Errorf("provider %q apiVersion %q", p.Name, p.APIVersion)
	}
	if !reflect.DeepEqual(p.MatchImages, c.want.matchImages) {
		t.Errorf("matchImages %q, want %q", p.MatchImages, c.want.matchImages)
	}
	if p.DefaultCacheDuration != "55m0s" || !reflect.DeepEqual(p.Args, []string{"kubelet"}) {
		t.Errorf("defaultCacheDuration %q args %q", p.DefaultCacheDuration, p.Args)
	}
	env := map[string]string{}
	for _, e := range p.Env {
		env[e.Name] = e.Value
	}
	if !reflect.DeepEqual(env, c.want.env) {
		t.Errorf("env %v, want %v", env, c.want.env)
	}

	if c.mode == "node" {
		if p.TokenAttributes != nil {
			t.Errorf("node mode has tokenAttributes %v", p.TokenAttributes)
		}
		return
	}
	want := map[string]any{
		"serviceAccountTokenAudience":          "issuer.enforce.dev",
		"requireServiceAccount":                false,
		"optionalServiceAccountAnnotationKeys": []any{"credentials.chainguard.dev/identity"},
	}
	if c.minor >= 34 {
		// Required from 1.34 (validateCredentialProviderConfig); 1.33's
		// types have no such field.
		want["cacheType"] = "ServiceAccount"
	}
	if !reflect.DeepEqual(p.TokenAttributes, want) {
		t.Errorf("tokenAttributes\n%v\nwant\n%v", p.TokenAttributes, want)
	}
}

// YAMLPrefix and CodecPrefix start the lines of a Decoder's error that come
// from sigs.k8s.io/yaml and from the apimachinery strict codec.
const (
	YAMLPrefix  = "sigs.k8s.io/yaml:"
	CodecPrefix = "strict codec:"
)

// refusedByBoth checks err has a line from each decoder, each naming an
// unknown field and field.
func refusedByBoth(err error, field string) bool {
	if err == nil {
		return false
	}
	found := map[string]bool{}
	for l := range strings.SplitSeq(err.Error(), "\n") {
		for _, p := range []string{YAMLPrefix, CodecPrefix} {
			if strings.HasPrefix(l, p) && strings.Contains(l, "unknown field") && strings.Contains(l, field) {
				found[p] = true
			}
		}
	}
	return found[YAMLPrefix] && found[CodecPrefix]
}

// ErrNotConfig is returned by decoders for a document of another kind.
var ErrNotConfig = errors.New("not a kubelet.config.k8s.io/v1 CredentialProviderConfig")
