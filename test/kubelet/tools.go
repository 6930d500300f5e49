//go:build tools

package kubelettest

// The commands test/cluster/build-kube.sh builds from this module, so that
// they and this module's tests compile the kubelet's packages from the same
// module versions: on a cold machine each such package compiles once.
import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
