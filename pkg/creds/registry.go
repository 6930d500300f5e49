package creds

import "strings"

// NormalizeHost reduces a server URL to the registry host it names, the form
// registries are matched in: scheme, user info, path, query and trailing
// slash dropped, host lower-cased, and the default HTTPS port removed. So
// "cgr.dev", "https://cgr.dev", "https://cgr.dev/" and "CGR.dev:443/chainguard"
// all become "cgr.dev". Docker, go-containerregistry and the kubelet each
// send a different one of these shapes for the same registry.
func NormalizeHost(serverURL string) string {
	s := strings.TrimSpace(serverURL)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.ToLower(strings.TrimSpace(s))
	for strings.HasSuffix(s, ":443") {
		s = strings.TrimSuffix(s, ":443")
	}
	return s
}

// registries is the set of hosts the helper answers for. An entry is a host
// ("cgr.dev", "localhost:5000") or a wildcard for every subdomain of a host
// ("*.cgr.dev").
type registries []string

// parseRegistries reads a comma-separated list of hosts, normalising each.
func parseRegistries(list string) registries {
	var r registries
	for _, p := range strings.Split(list, ",") {
		if h := normalizePattern(p); h != "" {
			r = append(r, h)
		}
	}
	return r
}

func normalizePattern(p string) string {
	p = strings.TrimSpace(p)
	if rest, ok := strings.CutPrefix(p, "*."); ok {
		if h := NormalizeHost(rest); h != "" {
			return "*." + h
		}
		return ""
	}
	return NormalizeHost(p)
}

// serves reports whether host (already normalised) is one of r.
func (r registries) serves(host string) bool {
	if host == "" {
		return false
	}
	for _, p := range r {
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
		} else if host == p {
			return true
		}
	}
	return false
}

// hosts lists the concrete (non-wildcard) entries, for the docker "list" action.
func (r registries) hosts() []string {
	var out []string
	for _, p := range r {
		if !strings.HasPrefix(p, "*") {
			out = append(out, p)
		}
	}
	return out
}
