// Package kubelet makes docker-credential-cgr a kubelet image credential
// provider plugin: a CredentialProviderRequest on stdin, a
// CredentialProviderResponse on stdout, through the same ambient token,
// cache and exchange path as the docker helper.
//
// The wire types are declared here rather than imported from k8s.io/kubelet:
// those pull in k8s.io/apimachinery, which would cost every docker pull's
// cached get about half again its process start. Tests in test/kubelet
// prove the JSON decodes strictly into the k8s.io/kubelet types and that
// the kubelet's own plugin code accepts it.
package kubelet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/jsonstr"
	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
)

const (
	// APIGroup is the group of the kubelet's credential provider API.
	APIGroup = "credentialprovider.kubelet.k8s.io"
	// APIVersion is the version configure-kubelet asks the kubelet to speak.
	APIVersion = APIGroup + "/v1"
	// APIVersionV1Beta1 is also answered, for kubelets configured by hand
	// with it: the kubelet (through 1.36 at least) still implements it, and
	// its CredentialProviderResponse is field for field the v1 one. Its
	// request has no serviceAccountToken, so it serves node mode only.
	// v1alpha1 is not answered: it is an alpha no supported kubelet needs.
	APIVersionV1Beta1 = APIGroup + "/v1beta1"
	// IdentityAnnotation on a service account names the identity its pods
	// assume, as in Chainguard's own example.
	IdentityAnnotation = "credentials.chainguard.dev/identity"

	maxRequest = 1 << 20
)

// SupportedAPIVersions lists the request versions Serve answers; the
// response echoes the request's.
var SupportedAPIVersions = []string{APIVersion, APIVersionV1Beta1}

// Request is a CredentialProviderRequest.
type Request struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Image is the image being pulled, as written in the pod spec.
	Image string `json:"image"`
	// ServiceAccountToken is the pod's service-account token, present when
	// the provider is configured with tokenAttributes (KEP-4412).
	ServiceAccountToken string `json:"serviceAccountToken,omitempty"`
	// ServiceAccountAnnotations holds the annotations the configuration
	// asked the kubelet to pass.
	ServiceAccountAnnotations map[string]string `json:"serviceAccountAnnotations,omitempty"`
}

// Response is a CredentialProviderResponse.
type Response struct {
	APIVersion    string                `json:"apiVersion"`
	Kind          string                `json:"kind"`
	CacheKeyType  string                `json:"cacheKeyType"`
	CacheDuration *Duration             `json:"cacheDuration,omitempty"`
	Auth          map[string]AuthConfig `json:"auth"`
}

// AuthConfig is one registry's credentials.
type AuthConfig struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Duration encodes like metav1.Duration: a Go duration string.
type Duration struct{ time.Duration }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Provider is what Serve needs from the credential helper: the credential
// for one pull. *creds.Helper is the one the binary uses; the adapter's own
// tests use a fake, so the protocol is proved without an STS.
type Provider interface {
	// PullCredential returns the credential for p, or ok false when p's
	// registry is not served (the kubelet then gets no credentials from us).
	PullCredential(ctx context.Context, p creds.Pull) (cred creds.Credential, ok bool, err error)
}

var _ Provider = (*creds.Helper)(nil)

// Serve answers one request read from in, writing the response to out.
func Serve(ctx context.Context, p Provider, in io.Reader, out io.Writer) error {
	req, err := readRequest(in)
	if err != nil {
		return err
	}
	resp := Response{
		APIVersion:   req.APIVersion,
		Kind:         "CredentialProviderResponse",
		CacheKeyType: "Registry",
		Auth:         map[string]AuthConfig{},
	}
	pull := pullOf(req)
	cred, ok, err := p.PullCredential(ctx, pull)
	if err != nil {
		return err
	}
	if ok {
		resp.CacheDuration = &Duration{cred.CacheFor}
		resp.Auth[pull.Registry] = AuthConfig{Username: cred.Username, Password: cred.Password}
	}
	_, err = out.Write(appendResponse(nil, resp))
	return err
}

// appendResponse appends resp and a newline, with the bytes json.Marshal
// writes for resp (FuzzAppendResponseIsJSONMarshal holds it to that).
// json.Marshal encodes by reflection, and in a process that lives for one
// call that first use was 100,000 of a cached kubelet call's 1.15 million
// instructions (callgrind).
func appendResponse(b []byte, resp Response) []byte {
	b = jsonstr.Append(append(b, `{"apiVersion":`...), resp.APIVersion)
	b = jsonstr.Append(append(b, `,"kind":`...), resp.Kind)
	b = jsonstr.Append(append(b, `,"cacheKeyType":`...), resp.CacheKeyType)
	if resp.CacheDuration != nil {
		b = jsonstr.Append(append(b, `,"cacheDuration":`...), resp.CacheDuration.String())
	}
	b = append(b, `,"auth":`...)
	if resp.Auth == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		for i, host := range slices.Sorted(maps.Keys(resp.Auth)) {
			if i > 0 {
				b = append(b, ',')
			}
			a := resp.Auth[host]
			b = jsonstr.Append(b, host)
			b = jsonstr.Append(append(b, `:{"username":`...), a.Username)
			b = jsonstr.Append(append(b, `,"password":`...), a.Password)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, "}\n"...)
}

// pullOf is what the request asks for: with the pod's service-account
// token, the pod's own credential, under the identity its service account
// names; without, the node's.
func pullOf(req Request) creds.Pull {
	pull := creds.Pull{Registry: registryOf(req.Image), ServiceAccountToken: req.ServiceAccountToken}
	if req.ServiceAccountToken != "" {
		if id := strings.TrimSpace(req.ServiceAccountAnnotations[IdentityAnnotation]); id != "" {
			pull.Identity = id
			pull.IdentitySource = "the service account's " + IdentityAnnotation + " annotation"
		}
	}
	return pull
}

func readRequest(in io.Reader) (Request, error) {
	var req Request
	b, err := io.ReadAll(io.LimitReader(in, maxRequest+1))
	if err != nil {
		return req, fmt.Errorf("reading the CredentialProviderRequest from stdin: %w", err)
	}
	if len(b) > maxRequest {
		return req, errors.New("the CredentialProviderRequest on stdin is larger than 1 MiB")
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return req, fmt.Errorf("stdin is not a CredentialProviderRequest (%s); this command is run by the kubelet, see docs/kubernetes.md", logsafe.Quote(err.Error(), 200))
	}
	if req.Kind != "CredentialProviderRequest" {
		return req, fmt.Errorf("stdin has kind %s, want a CredentialProviderRequest of %s", logsafe.Quote(req.Kind, 64), APIVersion)
	}
	if !slices.Contains(SupportedAPIVersions, req.APIVersion) {
		return req, fmt.Errorf("the CredentialProviderRequest has apiVersion %s, which this plugin does not implement; supported: %s; set apiVersion: %s for this provider in the kubelet's CredentialProviderConfig",
			logsafe.Quote(req.APIVersion, 64), quoteAll(SupportedAPIVersions), APIVersion)
	}
	if req.APIVersion != APIVersion && (req.ServiceAccountToken != "" || len(req.ServiceAccountAnnotations) > 0) {
		return req, fmt.Errorf("the CredentialProviderRequest of %s carries service-account fields, which only %s has; set apiVersion: %s for this provider in the kubelet's CredentialProviderConfig",
			req.APIVersion, APIVersion, APIVersion)
	}
	if req.Image == "" {
		return req, errors.New("the CredentialProviderRequest names no image")
	}
	return req, nil
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = logsafe.Quote(s, logsafe.DefaultLimit)
	}
	return strings.Join(q, ", ")
}

// registryOf is the registry host of an image reference, port included,
// exactly as the kubelet keys its credential cache.
func registryOf(image string) string {
	host, _, _ := strings.Cut(image, "/")
	return host
}
