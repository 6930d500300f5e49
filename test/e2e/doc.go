// Package e2e proves the built docker-credential-cgr binary with the clients
// people actually run: crane, skopeo and docker (through a dockerd the suite
// starts itself), pulling from a real CNCF distribution registry
// (Debian's docker-registry) that does token auth against the sandbox's
// cgr.dev-like realm, STS and cluster issuer.
//
// The tests carry the "e2e" build tag, so `go test ./...` stays fast. Run
// them with `make e2e` after test/e2e/install.sh has installed the Debian
// packages docker.io, skopeo and docker-registry and crane. Outside CI a
// missing component skips the tests that need it, naming the package to
// install; with CI=true it fails them.
package e2e
