// Package distribution configures Debian's docker-registry (the CNCF
// distribution registry) the way both real-component suites run it:
// test/e2e (real clients) and test/cluster (a real kubelet).
package distribution

import (
	"fmt"
	"time"
)

// TokenAuth is distribution's auth.token configuration: the realm clients
// get a token from, and how the registry verifies that token.
type TokenAuth struct {
	Realm, Service, Issuer, RootCertBundle string
}

// Config is docker-registry's config.yml: storage on the filesystem,
// listening on addr, with token auth when auth is not nil. Start the
// registry with HOME only in its environment: REGISTRY_* variables would
// override the file.
func Config(storage, addr string, auth *TokenAuth) string {
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: %q
`, storage, addr, fmt.Sprint(time.Now().UnixNano()))
	if auth != nil {
		cfg += fmt.Sprintf(`auth:
  token:
    realm: %q
    service: %q
    issuer: %q
    rootcertbundle: %q
`, auth.Realm, auth.Service, auth.Issuer, auth.RootCertBundle)
	}
	return cfg
}

// ReadyStatus is what GET /v2/ answers once the registry is up: 401 with
// token auth (the challenge), 200 without.
func ReadyStatus(auth *TokenAuth) int {
	if auth != nil {
		return 401
	}
	return 200
}
