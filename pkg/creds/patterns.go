package creds

// ParseRegistries checks and normalises a comma-separated list of registry
// patterns (the form of CHAINGUARD_REGISTRY) with the rules the helper
// itself applies, so that a tool writing settings for it (configure-kubelet)
// refuses what the helper would refuse. Empty entries are skipped; the
// result may be empty.
func ParseRegistries(list string) ([]string, error) {
	r, err := parseRegistries(list)
	return []string(r), err
}

// Serves reports whether the helper, configured with the registry patterns
// (Config.Registries), answers for host, by the same match as Get: exactly,
// or under a "*.domain" wildcard. A tool writing settings for the helper
// (configure-docker) uses it to tell which hosts the helper would serve.
func Serves(patterns []string, host string) bool {
	return registries(patterns).serves(NormalizeHost(host))
}
