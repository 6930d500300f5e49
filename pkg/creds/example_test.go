package creds_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cgr-helper/docker-credential-cgr/internal/sandbox"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds/ggcr"
)

// A Go program (ko, crane, a controller) can use the helper in-process,
// with no credential-helper binary involved: ggcr.Keychain makes it a
// go-containerregistry Keychain that, unlike authn.NewKeychainFromHelper,
// returns the helper's errors instead of pulling anonymously.
func Example_keychain() {
	// A sandbox stands in for the cluster, the STS and cgr.dev.
	sb, err := sandbox.Start()
	if err != nil {
		panic(err)
	}
	defer sb.Close()
	pushed, err := sb.Registry.PushRandomImage("chainguard/static", "latest")
	if err != nil {
		panic(err)
	}
	dir, _ := os.MkdirTemp("", "example-")
	defer func() { _ = os.RemoveAll(dir) }()
	ambient, _ := sb.Issuer.MintServiceAccountToken("default", "builder")
	tokenFile := filepath.Join(dir, "oidc-token")
	_ = os.WriteFile(tokenFile, []byte(ambient), 0o600)

	// In production LoadConfig(os.Getenv) with defaults is all it takes.
	cfg, err := creds.LoadConfig(func(string) string { return "" })
	if err != nil {
		panic(err)
	}
	cfg.Issuer = sb.STS.URL()
	cfg.Registries = []string{sb.Registry.Host()}
	cfg.Identity = sandbox.DefaultIdentity
	cfg.IdentityToken = tokenFile
	cfg.CacheDir = filepath.Join(dir, "cache")
	helper, err := creds.New(cfg)
	if err != nil {
		panic(err)
	}

	keychain := ggcr.Keychain(helper)
	ref, _ := name.ParseReference(sb.Registry.Host()+"/chainguard/static:latest", name.Insecure)
	img, err := remote.Image(ref, remote.WithAuthFromKeychain(keychain))
	if err != nil {
		panic(err)
	}
	digest, _ := img.Digest()
	fmt.Println("pulled the pushed image:", digest.String() == pushed)
	fmt.Println("exchanges:", sb.STS.Exchanges())
	// Output:
	// pulled the pushed image: true
	// exchanges: 1
}
