// Package v1_33 decodes configure-kubelet's configs for kubelet 1.33
// with k8s.io/kubelet v0.33.13's own config/v1 types. The modules beside
// it differ only in go.mod and the minor constant.
package v1_33

import (
	"testing"

	kubeletconfigv1 "k8s.io/kubelet/config/v1"

	kubeletconfig "github.com/cgr-helper/docker-credential-cgr/test/kubelet-config"
)

const minor = 33

func TestMain(m *testing.M) { kubeletconfig.Main(m) }

// decode is strict decoding with this release's own types.
var decode = kubeletconfig.StrictDecoder[kubeletconfigv1.CredentialProviderConfig](kubeletconfigv1.AddToScheme)

func TestConfigs(t *testing.T) {
	kubeletconfig.Run(t, minor, decode)
}

// 1.33 has no tokenAttributes.cacheType: the newest release's
// service-account config must be refused, or this test proves nothing.
func TestRefusesNewerConfig(t *testing.T) {
	kubeletconfig.RefuseNewer(t, minor, decode, "cacheType")
}
