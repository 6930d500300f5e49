// Package sandbox holds every fake the tests and the demo need, in one
// place: a Kubernetes-style OIDC issuer (with a GitHub Actions token
// endpoint), a Chainguard-style STS, and a token-protected OCI registry
// behind a cgr.dev-like token realm.
//
// The fakes speak the real wire protocols and verify JWT signatures for
// real, so a client that passes against them has done the real work. All
// servers listen on 127.0.0.1 over plain HTTP. Everything is safe for
// concurrent use, and nothing here ever logs a token. The product never
// imports this package.
package sandbox

const (
	// EnforceAudience is the audience ambient tokens must be issued for.
	EnforceAudience = "issuer.enforce.dev"
	// RegistryAudience is the audience of STS-issued registry tokens, and
	// the registry's token "service".
	RegistryAudience = "cgr.dev"
	// DefaultIdentity is the assumable identity Start registers. It has the
	// shape of a real Chainguard identity id (group id, slash, identity
	// suffix), so clients are exercised with the slash real ids contain.
	DefaultIdentity = "720909c9f5279097d847ad02a2f24ba8f59de36a/b6a1d3e7c9f20517"
	// DefaultSubjectPattern is DefaultIdentity's subject pattern: any
	// Kubernetes service account of the sandbox issuer.
	DefaultSubjectPattern = "system:serviceaccount:[^:]+:[^:]+"
)

// Sandbox is the whole world wired together: an Issuer, an STS trusting it
// through DefaultIdentity, and a Registry whose realm accepts that STS's
// tokens.
type Sandbox struct {
	Issuer   *Issuer
	STS      *STS
	Registry *Registry
}

// Start starts an Issuer, an STS and a Registry and wires them together.
func Start() (*Sandbox, error) {
	s := &Sandbox{}
	var err error
	if s.Issuer, err = NewIssuer(); err != nil {
		return nil, err
	}
	if s.STS, err = NewSTS(); err != nil {
		s.Close()
		return nil, err
	}
	s.STS.AddIdentity(DefaultIdentity, Identity{Issuer: s.Issuer.URL(), SubjectPattern: DefaultSubjectPattern})
	if s.Registry, err = NewRegistry(s.STS); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops every server that was started.
func (s *Sandbox) Close() {
	if s.Registry != nil {
		s.Registry.Close()
	}
	if s.STS != nil {
		s.STS.Close()
	}
	if s.Issuer != nil {
		s.Issuer.Close()
	}
}
