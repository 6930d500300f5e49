// Package kubelettest proves docker-credential-cgr works as a kubelet image
// credential provider by driving the built binary with the kubelet's own
// plugin code (k8s.io/kubernetes/pkg/credentialprovider/plugin, v1.37.2), and
// by decoding its wire format and configuration strictly with the
// k8s.io/kubelet and k8s.io/api types.
//
// It is a separate module so that the product module does not depend on
// k8s.io/kubernetes. Everything runs against internal/sandbox on 127.0.0.1.
// Run it from the repository root with:
//
//	(cd test/kubelet && go test -count=1 ./...)
//
// -count=1 matters: the tests build the binary from the product's sources,
// which lie outside this module, so go test's result cache cannot see them
// change (nor the golden files in pkg/kubelet/testdata).
package kubelettest
