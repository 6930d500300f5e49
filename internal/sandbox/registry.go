package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is a token-protected OCI registry: go-containerregistry's
// in-memory registry behind a cgr.dev-like token realm served at /token on
// the same host:port. It is read-only through its front door; tests seed it
// with PushRandomImage.
type Registry struct {
	srv   *httptest.Server
	inner http.Handler
	realm *TokenRealm
}

// NewRegistry starts a registry whose realm accepts tokens sts issued for
// RegistryAudience.
func NewRegistry(sts *STS) (*Registry, error) {
	realm, err := NewTokenRealm(sts, RegistryAudience)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		// The inner registry logs every request; tests do not want that noise.
		inner: registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		realm: realm,
	}
	// Start only after every field is set: handlers read them.
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.route))
	r.srv.Start()
	return r, nil
}

// Host is "127.0.0.1:PORT", what a client puts in an image reference.
func (r *Registry) Host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

// URL is "http://127.0.0.1:PORT".
func (r *Registry) URL() string { return r.srv.URL }

// Close stops the server.
func (r *Registry) Close() { r.srv.Close() }

// Realm is the registry's token realm (for its certificate and counters).
func (r *Registry) Realm() *TokenRealm { return r.realm }

// TokenRequests is the number of requests to the realm.
func (r *Registry) TokenRequests() int { return r.realm.Requests() }

// PushRandomImage pushes a small random image (1 KiB, 2 layers) as
// repo:tag and returns its digest. It bypasses auth by pushing through a
// short-lived unauthenticated server wrapping the same in-memory registry.
func (r *Registry) PushRandomImage(repo, tag string) (string, error) {
	if repo == "" || tag == "" {
		return "", errors.New("sandbox: repository and tag must be non-empty")
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		return "", fmt.Errorf("sandbox: random image: %w", err)
	}
	back := httptest.NewServer(r.inner)
	defer back.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(back.URL, "http://")+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("sandbox: image reference: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
		return "", fmt.Errorf("sandbox: pushing %s:%s: %w", repo, tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("sandbox: image digest: %w", err)
	}
	return d.String(), nil
}

func (r *Registry) route(w http.ResponseWriter, req *http.Request) {
	switch p := req.URL.Path; {
	case p == "/token":
		r.realm.ServeHTTP(w, req)
	case p == "/v2" || strings.HasPrefix(p, "/v2/"):
		r.serveV2(w, req)
	default:
		http.NotFound(w, req)
	}
}

// serveV2 is the auth middleware: a valid realm token is required for
// everything, pull access on the repository for repository URLs, and
// writes are refused whatever the token.
func (r *Registry) serveV2(w http.ResponseWriter, req *http.Request) {
	write := req.Method != http.MethodGet && req.Method != http.MethodHead
	res := resourceOf(req.URL.Path)
	raw, ok := bearerToken(req)
	if !ok {
		r.challenge(w, res, write, "", "authentication required")
		return
	}
	claims, err := r.realm.verify(raw)
	if err != nil {
		r.challenge(w, res, write, "invalid_token", "invalid registry token: "+err.Error())
		return
	}
	if write {
		writeRegistryError(w, http.StatusForbidden, "DENIED", "this registry is read-only")
		return
	}
	if res.typ != "" && !claims.grants(res.typ, res.name, "pull") {
		r.challenge(w, res, write, "insufficient_scope", fmt.Sprintf("token does not grant pull on %s %q", res.typ, res.name))
		return
	}
	r.inner.ServeHTTP(w, req)
}

// challenge answers 401 with distribution's Bearer challenge, naming the
// scope the request needs so clients know what to ask the realm for.
func (r *Registry) challenge(w http.ResponseWriter, res resource, write bool, errCode, message string) {
	c := fmt.Sprintf(`Bearer realm=%q,service=%q`, r.srv.URL+"/token", r.realm.service)
	if res.typ != "" {
		actions := "pull"
		if write {
			actions = "pull,push"
		}
		if res.typ == "registry" {
			actions = "*"
		}
		c += fmt.Sprintf(`,scope="%s:%s:%s"`, res.typ, res.name, actions)
	}
	if errCode != "" {
		c += fmt.Sprintf(`,error=%q`, errCode)
	}
	w.Header().Set("WWW-Authenticate", c)
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", message)
}

// resource is what a /v2/ URL needs access to; the zero value means only a
// valid token (the base /v2/ endpoint).
type resource struct {
	typ, name string
}

// resourceOf finds the repository in a /v2/ path. Repository names may
// contain slashes but references and digests may not, so the last
// distribution marker in the path ends the name.
func resourceOf(path string) resource {
	rest := strings.TrimPrefix(path, "/v2/")
	if rest == "_catalog" {
		return resource{"registry", "catalog"}
	}
	end := -1
	for _, marker := range []string{"/manifests/", "/blobs/", "/tags/list", "/referrers/"} {
		end = max(end, strings.LastIndex(rest, marker))
	}
	if end <= 0 {
		return resource{}
	}
	return resource{"repository", rest[:end]}
}

// Pull fetches ref's manifest and every layer with auth, as a client pulling
// the image would, and returns the image's digest.
func Pull(ctx context.Context, ref string, auth authn.Authenticator) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	img, err := remote.Image(r, remote.WithAuth(auth), remote.WithContext(ctx))
	if err != nil {
		return "", err
	}
	layers, err := img.Layers()
	if err != nil {
		return "", err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return "", err
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
	}
	d, err := img.Digest()
	return d.String(), err
}
