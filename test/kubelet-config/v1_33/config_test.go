// Package v1_33 decodes configure-kubelet's configs for kubelet 1.33
// with k8s.io/kubelet v0.33.13's own config/v1 types. The modules beside
// it differ only in go.mod and the minor constant.
package v1_33

import (
	"errors"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	"sigs.k8s.io/yaml"

	kubeletconfig "github.com/cgr-helper/docker-credential-cgr/test/kubelet-config"
)

const minor = 33

func TestMain(m *testing.M) { kubeletconfig.Main(m) }

// decode decodes strictly twice: with sigs.k8s.io/yaml, and with the strict
// codec over the v1 scheme, the serializer the kubelet decodes its
// credential provider config with. Both must accept the config and agree;
// when either refuses it, the error has a line from each.
func decode(data []byte) ([]byte, error) {
	var cfg kubeletconfigv1.CredentialProviderConfig
	errYAML := yaml.UnmarshalStrict(data, &cfg)
	if errYAML != nil {
		errYAML = fmt.Errorf("%s %w", kubeletconfig.YAMLPrefix, errYAML)
	}
	scheme := runtime.NewScheme()
	if err := kubeletconfigv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
	obj, gvk, errCodec := codecs.UniversalDeserializer().Decode(data, nil, nil)
	if errCodec != nil {
		errCodec = fmt.Errorf("%s %w", kubeletconfig.CodecPrefix, errCodec)
	}
	if errYAML != nil || errCodec != nil {
		return nil, errors.Join(errYAML, errCodec)
	}
	viaCodec, ok := obj.(*kubeletconfigv1.CredentialProviderConfig)
	if !ok || gvk.Kind != "CredentialProviderConfig" {
		return nil, fmt.Errorf("%w: %s", kubeletconfig.ErrNotConfig, gvk)
	}
	a, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	b, err := yaml.Marshal(viaCodec)
	if err != nil {
		return nil, err
	}
	if string(a) != string(b) {
		return nil, fmt.Errorf("the two decoders disagree:\n%s\nand\n%s", a, b)
	}
	return yaml.YAMLToJSON(a)
}

func TestConfigs(t *testing.T) {
	kubeletconfig.Run(t, minor, decode)
}

// 1.33 has no tokenAttributes.cacheType: the newest release's
// service-account config must be refused, or this test proves nothing.
func TestRefusesNewerConfig(t *testing.T) {
	kubeletconfig.RefuseNewer(t, minor, decode, "cacheType")
}
