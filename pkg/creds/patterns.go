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
