package kubelet

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

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

const (
	// ProviderName is the provider's name in the kubelet config, which the
	// kubelet also uses as the executable's name in its plugin folder.
	ProviderName = "docker-credential-cgr"
	// DefaultCacheDir is where the plugin caches tokens on a node: the
	// kubelet often runs without HOME, so the user cache folder is unknown.
	DefaultCacheDir = "/var/cache/docker-credential-cgr"
	// defaultCacheDuration applies only if a response has no cacheDuration;
	// ours always do when they carry credentials.
	defaultCacheDuration = "55m0s"
	rbacName             = "docker-credential-cgr-token-audience"
)

// EnvVar is a variable the kubelet sets when it runs the plugin.
type EnvVar struct{ Name, Value string }

// ConfigOptions shapes the CredentialProviderConfig.
type ConfigOptions struct {
	Mode Mode
	// MatchImages are the registries the kubelet asks the plugin about.
	MatchImages []string
	// Env is passed to the plugin.
	Env []EnvVar
}

// OptionsFor derives the options from the effective configuration: the
// served registries become matchImages, and every setting that differs
// from the default is handed to the plugin, because the kubelet runs it
// with the kubelet's environment, not the admin's. Paths are made
// absolute, since the kubelet runs the plugin from its own folder. A token
// given as CHAINGUARD_IDENTITY_TOKEN's value is refused: the config is for
// every node, and it would carry a secret that expires within the hour.
func OptionsFor(cfg creds.Config, mode Mode, cacheDir string) (ConfigOptions, error) {
	o := ConfigOptions{Mode: mode, MatchImages: cfg.Registries}
	if creds.LooksLikeJWT(cfg.IdentityToken) {
		return o, fmt.Errorf("CHAINGUARD_IDENTITY_TOKEN holds a token, which must not go into a kubelet config shared by every node and would expire within the hour; set it to the path of the token file on the node, or unset it to use %s", creds.DefaultTokenPath)
	}
	tokenPath, err := absolute(cfg.IdentityToken)
	if err != nil {
		return o, err
	}
	if cacheDir, err = absolute(cacheDir); err != nil {
		return o, err
	}
	add := func(name, value, def string) {
		if value != "" && value != def {
			o.Env = append(o.Env, EnvVar{name, value})
		}
	}
	add("CHAINGUARD_IDENTITY", cfg.Identity, "")
	add("CHAINGUARD_IDENTITY_TOKEN", tokenPath, "")
	add("CHAINGUARD_ISSUER", cfg.Issuer, exchange.DefaultIssuer)
	add("CHAINGUARD_AUDIENCE", cfg.Audience, creds.DefaultAudience)
	add("CHAINGUARD_REGISTRY", strings.Join(cfg.Registries, ","), creds.DefaultRegistry)
	add("CHAINGUARD_CACHE_DIR", cacheDir, "")
	return o, nil
}

// absolute makes a non-empty path absolute.
func absolute(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}

// WriteConfig writes a CredentialProviderConfig (kubelet.config.k8s.io/v1),
// one YAML document the kubelet loads as it is.
func WriteConfig(w io.Writer, o ConfigOptions) error {
	if o.Mode != NodeMode && o.Mode != ServiceAccountMode {
		return fmt.Errorf("unknown mode %q: use %q or %q", o.Mode, NodeMode, ServiceAccountMode)
	}
	if len(o.MatchImages) == 0 {
		return fmt.Errorf("no registries to match; set CHAINGUARD_REGISTRY")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# CredentialProviderConfig for %s (%s mode), written by `%s configure-kubelet`.\n", ProviderName, o.Mode, ProviderName)
	fmt.Fprintf(&b, "# Pass its path to the kubelet's --image-credential-provider-config, and put the\n")
	fmt.Fprintf(&b, "# binary, named %s, in --image-credential-provider-bin-dir.\n", ProviderName)
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
		// cacheType ServiceAccount: credentials depend on the service
		// account and its annotation, not on the pod's short-lived token,
		// so the kubelet may reuse them across the account's pods.
		fmt.Fprintf(&b, "  tokenAttributes:\n    serviceAccountTokenAudience: %s\n    requireServiceAccount: false\n", quote(creds.EnforceAudience))
		fmt.Fprintf(&b, "    optionalServiceAccountAnnotationKeys:\n    - %s\n    cacheType: ServiceAccount\n", quote(IdentityAnnotation))
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
