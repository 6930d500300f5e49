// Package cluster proves the built docker-credential-cgr binary as a real
// kubelet's image credential provider: the test starts a single-node cluster
// on loopback (etcd, kube-apiserver with Node,RBAC authorization and the
// NodeRestriction admission plugin, containerd and the kubelet, built from
// k8s.io/kubernetes) and has pods pull from a real CNCF distribution
// registry (Debian's docker-registry) behind the sandbox's cgr.dev-like
// token realm and STS. The STS trusts the cluster the way Chainguard does
// for a private cluster: through identities holding the API server's JWKS
// (static issuer keys), so the service-account tokens the real API server
// mints are verified for real.
//
// The same cluster runs the README's "Use inside a Kubernetes pod" section
// as written (readme_test.go reads it from README.md and lists each line it
// changes, and why): a pod whose projected service-account token feeds the
// helper inside the container, where crane pulls through it; and the
// controls a platform engineer meets first (wrong audience, an untrusted
// service account, no volume), judged by the container's log.
//
// The tests carry the "e2ekubelet" build tag, so `go test ./...` stays fast.
// Run them with `make e2e-kubelet`, which runs test/cluster/install.sh (the
// Debian packages, and the kube binaries built once into a cache folder)
// first. Outside CI a missing component skips the test, naming what to
// install; with CI=true it fails it. The test needs root (it starts
// containerd and the kubelet) and a machine that is not a Kubernetes node:
// the kubelet uses a few fixed paths (/var/lib/kubelet/device-plugins,
// /var/log/containers, /run/containerd) whatever its flags say; those the
// run creates are removed after it.
package cluster
