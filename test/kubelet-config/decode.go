package kubeletconfig

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"
)

// StrictDecoder is the Decoder for one release: T is that release's
// CredentialProviderConfig and addToScheme its config/v1 AddToScheme. It
// decodes strictly twice: with sigs.k8s.io/yaml, and with the strict codec
// over the v1 scheme, the serializer the kubelet decodes its credential
// provider config with. Both must accept the config and agree; when either
// refuses it, the error has a line from each. The module that calls it
// picks the k8s.io versions (this module asks for the oldest release's).
func StrictDecoder[T any, PT interface {
	*T
	runtime.Object
}](addToScheme func(*runtime.Scheme) error) Decoder {
	return func(data []byte) ([]byte, error) {
		var cfg T
		errYAML := yaml.UnmarshalStrict(data, &cfg)
		if errYAML != nil {
			errYAML = fmt.Errorf("%s %w", YAMLPrefix, errYAML)
		}
		scheme := runtime.NewScheme()
		if err := addToScheme(scheme); err != nil {
			return nil, err
		}
		codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
		obj, gvk, errCodec := codecs.UniversalDeserializer().Decode(data, nil, nil)
		if errCodec != nil {
			errCodec = fmt.Errorf("%s %w", CodecPrefix, errCodec)
		}
		if errYAML != nil || errCodec != nil {
			return nil, errors.Join(errYAML, errCodec)
		}
		viaCodec, ok := obj.(PT)
		if !ok || gvk.Kind != "CredentialProviderConfig" {
			return nil, fmt.Errorf("%w: %s", ErrNotConfig, gvk)
		}
		a, err := yaml.Marshal(PT(&cfg))
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
}
