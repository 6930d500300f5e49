package kubelet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// Mode is where the kubelet's plugin gets its ambient token.
type Mode string

const (
	// NodeMode uses the node's own ambient token for every pull.
	NodeMode Mode = "node"
	// ServiceAccountMode has the kubelet pass each pod's service-account
	// token (KEP-4412), so every service account pulls as itself.
	ServiceAccountMode Mode = "service-account"
)

// ParseMode reads a --mode value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case NodeMode, ServiceAccountMode:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %s: use %s or %s", logsafe.Describe(s), NodeMode, ServiceAccountMode)
}

const (
	// ProviderName is the provider's name in the kubelet config, which the
	// kubelet also uses as the executable's name in its plugin folder. On
	// Windows the file is ProviderName+".exe": the kubelet resolves the name
	// with exec.LookPath, which adds PATHEXT's extensions, so the same name
	// works on Linux and Windows nodes.
	ProviderName = "docker-credential-cgr"
	// DefaultCacheDir is where the plugin caches tokens on a node: the
	// kubelet often runs without HOME, so the user cache folder is unknown.
	DefaultCacheDir = "/var/cache/docker-credential-cgr"
	// FeatureGate is the kubelet feature gate that lets the kubelet pass
	// service-account tokens to credential plugins: alpha and off by default
	// in 1.33, beta and on by default from 1.34
	// (k8s.io/kubernetes pkg/features/kube_features.go).
	FeatureGate = "KubeletServiceAccountTokenForCredentialProviders"
	// defaultCacheDuration applies only if a response has no cacheDuration;
	// ours always do when they carry credentials.
	defaultCacheDuration = "55m0s"
	rbacName             = "docker-credential-cgr-token-audience"
)

// Version is a kubelet release, 1.MINOR, held as its minor number.
// Configs differ between releases: each kubelet decodes its config
// strictly, so a field a release does not know stops that kubelet.
type Version int

const (
	// OldestVersion is the first release whose kubelet can pass
	// service-account tokens to credential plugins (alpha, behind
	// FeatureGate).
	OldestVersion Version = 33
	// NewestVersion is the newest Kubernetes release, and the default.
	NewestVersion Version = 37
	// cacheTypeSince is the first release whose tokenAttributes has
	// cacheType, and requires it: 1.33's v1 types have no such field.
	cacheTypeSince Version = 34
)

// String gives the version as "1.MINOR".
func (v Version) String() string { return "1." + strconv.Itoa(int(v)) }

// Supported says whether configure-kubelet writes configs for v.
func (v Version) Supported() bool { return v >= OldestVersion && v <= NewestVersion }

// needsFeatureGate says whether service-account mode needs FeatureGate
// turned on by hand.
func (v Version) needsFeatureGate() bool { return v < cacheTypeSince }

// hasCacheType says whether tokenAttributes has (and requires) cacheType.
func (v Version) hasCacheType() bool { return v >= cacheTypeSince }

// Versions lists the supported releases, oldest first.
func Versions() []Version {
	var vs []Version
	for v := OldestVersion; v <= NewestVersion; v++ {
		vs = append(vs, v)
	}
	return vs
}

// supportedList is "1.33, 1.34, ... or 1.37".
func supportedList() string {
	var names []string
	for _, v := range Versions() {
		names = append(names, v.String())
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// ParseVersion reads a kubelet version: "1.MINOR", as
// --kubelet-version takes it; "v1.MINOR" and a patch release
// ("v1.33.4", as kubectl get nodes shows it) are read as 1.MINOR too.
func ParseVersion(s string) (Version, error) {
	bad := func(why string) (Version, error) {
		return 0, fmt.Errorf("kubelet version %s %s: use %s", logsafe.Describe(s), why, supportedList())
	}
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("is not 1.MINOR")
	}
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p != strconv.Itoa(n) {
			return bad("is not 1.MINOR")
		}
		nums[i] = n
	}
	v := Version(nums[1])
	if nums[0] != 1 || !v.Supported() {
		return bad("is not supported")
	}
	return v, nil
}

// Value is one setting as the admin gave it, and where it came from: a
// flag ("--identity") or an environment variable ("$CHAINGUARD_IDENTITY").
// From is empty when the setting was not given.
type Value struct{ V, From string }

// Settings are the plugin's settings for configure-kubelet, as flags or
// environment variables. They are never read from the admin's own config
// file: that is a person's, not every node's.
type Settings struct {
	Identity      Value // CHAINGUARD_IDENTITY
	IdentityToken Value // CHAINGUARD_IDENTITY_TOKEN: a path on the node
	Issuer        Value // CHAINGUARD_ISSUER
	Audience      Value // CHAINGUARD_AUDIENCE
	Registry      Value // CHAINGUARD_REGISTRY: comma-separated patterns
	CacheDir      Value // CHAINGUARD_CACHE_DIR
}

// EnvVar is a variable the kubelet sets when it runs the plugin.
type EnvVar struct{ Name, Value string }

// ConfigOptions shapes the CredentialProviderConfig.
type ConfigOptions struct {
	Mode    Mode
	Kubelet Version
	// MatchImages are the registries the kubelet asks the plugin about.
	MatchImages []string
	// Env is passed to the plugin.
	Env []EnvVar
	// Notes are comment lines at the top of the config saying where each
	// setting came from. They must not hold what the admin typed: a value
	// with a line break would end the comment.
	Notes []string
}

// OptionsFor checks the settings and turns them into the config's options:
// the registries become matchImages, and every setting that differs from
// the plugin's default is handed to the plugin, because the kubelet runs it
// with the kubelet's environment, not the admin's. Registries and the
// issuer are checked with the helper's own rules. Paths are made absolute,
// since the kubelet runs the plugin from its own folder. A token given
// instead of a token file's path is refused: the config is for every node,
// and it would carry a secret that expires within the hour.
func OptionsFor(mode Mode, v Version, s Settings) (ConfigOptions, error) {
	o := ConfigOptions{Mode: mode, Kubelet: v}
	if _, err := ParseMode(string(mode)); err != nil {
		return o, err
	}
	if !v.Supported() {
		return o, fmt.Errorf("kubelet version %s is not supported: use %s", v, supportedList())
	}
	given := func(val Value) bool { return val.From != "" || val.V != "" }
	from := func(val Value) string {
		if val.From == "" {
			return "the settings" // a caller that gave a value without its source
		}
		return val.From
	}

	registry := creds.DefaultRegistry
	if given(s.Registry) {
		regs, err := creds.ParseRegistries(s.Registry.V)
		if err != nil {
			return o, fmt.Errorf("%s: %w", from(s.Registry), err)
		}
		if len(regs) == 0 {
			return o, fmt.Errorf("%s names no registry host; give a comma-separated list such as cgr.dev,registry.example.com:5000, or leave it out for %s", from(s.Registry), creds.DefaultRegistry)
		}
		registry = strings.Join(regs, ",")
	}
	o.MatchImages = strings.Split(registry, ",")

	if creds.LooksLikeJWT(s.IdentityToken.V) {
		return o, fmt.Errorf("%s holds a token, which must not go into a kubelet config shared by every node and would expire within the hour; give the path of the token file on the node, or leave it out to use %s", from(s.IdentityToken), creds.DefaultTokenPath)
	}
	if logsafe.MightBeSecret(s.Identity.V) {
		return o, fmt.Errorf("%s holds a token, not an identity id, and a kubelet config is shared by every node; give the id of the assumable identity (chainctl iam identities list)", from(s.Identity))
	}
	tokenPath, err := absolute(s.IdentityToken.V)
	if err != nil {
		return o, err
	}
	issuer := s.Issuer.V
	if issuer != "" {
		c, err := exchange.New(issuer)
		if err != nil {
			return o, fmt.Errorf("%s: %w", from(s.Issuer), err)
		}
		issuer = c.Issuer()
	}
	cacheDir := DefaultCacheDir
	if given(s.CacheDir) {
		if s.CacheDir.V == "" {
			return o, fmt.Errorf("%s is empty: name the plugin's cache folder on the node, or leave it out for %s", from(s.CacheDir), DefaultCacheDir)
		}
		if cacheDir, err = absolute(s.CacheDir.V); err != nil {
			return o, err
		}
	}

	// set writes a setting for the plugin unless it is empty or the
	// plugin's own default, and notes where it came from; the notes never
	// hold the value, only flag and variable names and our defaults.
	set := func(name string, val Value, value, def, unset string) {
		var n string
		switch {
		case !given(val):
			n = unset
		case val.V == "":
			n = "empty in " + from(val) + ", so " + unset
		case value == def:
			n = "from " + from(val) + ", the plugin's default, so not written"
		default:
			n = "from " + from(val)
		}
		o.Notes = append(o.Notes, name+": "+n)
		if value != "" && value != def {
			o.Env = append(o.Env, EnvVar{name, value})
		}
	}
	set("CHAINGUARD_IDENTITY", s.Identity, s.Identity.V, "", "not set")
	set("CHAINGUARD_IDENTITY_TOKEN", s.IdentityToken, tokenPath, "", "not set: the plugin reads "+creds.DefaultTokenPath)
	set("CHAINGUARD_ISSUER", s.Issuer, issuer, exchange.DefaultIssuer, "not set: the plugin uses "+exchange.DefaultIssuer)
	set("CHAINGUARD_AUDIENCE", s.Audience, s.Audience.V, creds.DefaultAudience, "not set: the plugin uses "+creds.DefaultAudience)
	set("CHAINGUARD_REGISTRY", s.Registry, registry, creds.DefaultRegistry, "not set: matchImages are "+creds.DefaultRegistry)
	set("CHAINGUARD_CACHE_DIR", s.CacheDir, cacheDir, "", "not set: "+DefaultCacheDir+", written because the kubelet may run the plugin without HOME")
	return o, nil
}

// absolute makes a non-empty path absolute.
func absolute(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}

// WriteConfig writes a CredentialProviderConfig (kubelet.config.k8s.io/v1)
// for o.Kubelet: one YAML document the kubelet loads as it is. Nothing is
// written if o is not usable.
func WriteConfig(w io.Writer, o ConfigOptions) error {
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return err
	}
	if !o.Kubelet.Supported() {
		return fmt.Errorf("kubelet version %s is not supported: use %s", o.Kubelet, supportedList())
	}
	if len(o.MatchImages) == 0 {
		return errors.New("no registries to match; give --registry or CHAINGUARD_REGISTRY")
	}
	for _, n := range o.Notes {
		if strings.ContainsAny(n, "\r\n") {
			return errors.New("a note has a line break") // a bug: notes are ours
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# CredentialProviderConfig for %s, %s mode, kubelet %s.\n", ProviderName, o.Mode, o.Kubelet)
	fmt.Fprintf(&b, "# Written by `%s configure-kubelet`: pass its path to the kubelet's\n", ProviderName)
	fmt.Fprintf(&b, "# --image-credential-provider-config, and put the binary, named %s\n", ProviderName)
	fmt.Fprintf(&b, "# (%s.exe on Windows nodes), in --image-credential-provider-bin-dir.\n", ProviderName)
	if o.Mode == ServiceAccountMode {
		if o.Kubelet.needsFeatureGate() {
			fmt.Fprintf(&b, "# Kubelet %s: service-account tokens for plugins are alpha. Start the kubelet with\n", o.Kubelet)
			fmt.Fprintf(&b, "#   --feature-gates=%s=true\n", FeatureGate)
			fmt.Fprintf(&b, "# (or that gate under featureGates in its config file), or it refuses this\n")
			fmt.Fprintf(&b, "# config and exits. %s has no tokenAttributes.cacheType, so none is written.\n", o.Kubelet)
		} else {
			fmt.Fprintf(&b, "# Kubelet %s: the %s\n", o.Kubelet, FeatureGate)
			fmt.Fprintf(&b, "# feature gate is beta and on by default; tokenAttributes.cacheType is required.\n")
		}
		fmt.Fprintf(&b, "# The nodes also need RBAC: `%s configure-kubelet --rbac | kubectl apply -f -`.\n", ProviderName)
	}
	if len(o.Notes) > 0 {
		fmt.Fprintf(&b, "# Settings (flags win over environment variables; no config file is read):\n")
		for _, n := range o.Notes {
			fmt.Fprintf(&b, "#   %s\n", n)
		}
	}
	fmt.Fprintf(&b, "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n")
	fmt.Fprintf(&b, "- name: %s\n  apiVersion: %s\n  matchImages:\n", ProviderName, APIVersion)
	for _, m := range o.MatchImages {
		fmt.Fprintf(&b, "  - %s\n", quote(m))
	}
	fmt.Fprintf(&b, "  defaultCacheDuration: %s\n  args:\n  - kubelet\n", quote(defaultCacheDuration))
	if len(o.Env) > 0 {
		fmt.Fprintf(&b, "  env:\n")
		for _, e := range o.Env {
			fmt.Fprintf(&b, "  - name: %s\n    value: %s\n", e.Name, quote(e.Value))
		}
	}
	if o.Mode == ServiceAccountMode {
		// requireServiceAccount false: pods without a service account
		// (static pods) fall back to node mode instead of pulling
		// anonymously. The identity annotation is optional so that a
		// service account without it assumes CHAINGUARD_IDENTITY, one
		// identity whose subject pattern covers many service accounts.
		// cacheType ServiceAccount (1.34+, where it is required):
		// credentials depend on the service account and its annotation,
		// not on the pod's short-lived token, so the kubelet may reuse
		// them across the account's pods.
		fmt.Fprintf(&b, "  tokenAttributes:\n    serviceAccountTokenAudience: %s\n    requireServiceAccount: false\n", quote(creds.EnforceAudience))
		fmt.Fprintf(&b, "    optionalServiceAccountAnnotationKeys:\n    - %s\n", quote(IdentityAnnotation))
		if o.Kubelet.hasCacheType() {
			fmt.Fprintf(&b, "    cacheType: ServiceAccount\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteRBAC writes what service-account mode needs in the cluster: nodes
// may request service-account tokens for the STS's audience only if RBAC
// allows it (the NodeRestriction admission plugin checks the verb
// request-serviceaccounts-token-audience on a resource named after the
// audience).
func WriteRBAC(w io.Writer) error {
	_, err := fmt.Fprintf(w, `# Lets kubelets request service-account tokens for the Chainguard STS audience,
# as docker-credential-cgr's service-account mode needs. Apply with kubectl apply -f.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: %[1]s
rules:
- apiGroups: [""]
  resources: [%[2]s]
  verbs: ["request-serviceaccounts-token-audience"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: %[1]s
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: %[1]s
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:nodes
`, rbacName, quote(creds.EnforceAudience))
	return err
}

// quote makes a YAML double-quoted scalar; JSON string syntax is a subset.
func quote(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "<" and ">" need no escaping in YAML
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
