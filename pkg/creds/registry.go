package creds

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// NormalizeHost reduces a server URL to the registry host it names, the form
// registries are matched in: scheme, user info, path, query and trailing
// slash dropped, host lower-cased, and the default HTTPS port removed. So
// "cgr.dev", "https://cgr.dev", "https://cgr.dev/" and "CGR.dev:443/chainguard"
// all become "cgr.dev". Docker, go-containerregistry and the kubelet each
// send a different one of these shapes for the same registry.
func NormalizeHost(serverURL string) string {
	s := strings.TrimSpace(serverURL)
	// Only a real scheme ends at "://": in "//evil.example/://cgr.dev" it
	// is part of the path, as Go's URL parser reads it.
	if i := strings.Index(s, "://"); i > 0 && isScheme(s[:i]) {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.ToLower(strings.TrimSpace(s))
	// Until nothing changes: "x :443" loses the port, then the space.
	for t := ""; t != s; {
		t, s = s, strings.TrimSpace(strings.TrimSuffix(s, ":443"))
	}
	return s
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func isScheme(s string) bool {
	for i, c := range s {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || (c < '0' || c > '9') && c != '+' && c != '-' && c != '.') {
			return false
		}
	}
	return s != ""
}

// registries is the set of hosts the helper answers for. An entry is a host
// with an optional port ("cgr.dev", "localhost:5000", "[::1]:5000") or a
// wildcard for every subdomain of a domain ("*.cgr.dev").
type registries []string

// parseRegistries reads registry patterns, each a comma-separated list (the
// form of CHAINGUARD_REGISTRY), normalising each entry. Empty entries are
// skipped; anything that is not a host or a "*.domain" wildcard is an error
// naming it, because a loose pattern (a bare "*", "*cgr.dev", a URL whose
// path looks like a restriction) would hand a Chainguard token to registries
// nobody meant to trust.
func parseRegistries(lists ...string) (registries, error) {
	var r registries
	for _, list := range lists {
		for p := range strings.SplitSeq(list, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			h, err := parsePattern(p)
			if err != nil {
				return nil, err
			}
			r = append(r, h)
		}
	}
	return r, nil
}

// parsePattern checks and normalises one registry pattern.
func parsePattern(p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("registry pattern %s %s; use a host with an optional port (cgr.dev, registry.example.com:5000) or a wildcard for subdomains (*.cgr.dev)", logsafe.Describe(p), why)
	}
	switch {
	case strings.Contains(p, "://"):
		return bad("is a URL; write the host alone")
	case strings.ContainsAny(p, "/?#@"):
		return bad("has a path, query or user info; write the host alone")
	}
	wild := false
	host := p
	if rest, ok := strings.CutPrefix(p, "*."); ok {
		wild, host = true, rest
	}
	if strings.Contains(host, "*") {
		return bad("has a \"*\" that is not a leading \"*.\" wildcard")
	}
	name, port, err := splitHostPort(host)
	if err != nil {
		return bad(err.Error())
	}
	if wild {
		if port != "" || strings.HasPrefix(name, "[") || net.ParseIP(name) != nil {
			return bad("is a wildcard over an address or with a port; a wildcard names a domain")
		}
		if !strings.Contains(name, ".") {
			return bad("is a wildcard over a top-level domain; name a domain with at least two labels")
		}
	}
	out := strings.ToLower(name)
	if port != "" && port != "443" {
		out += ":" + port
	}
	if wild {
		out = "*." + out
	}
	return out, nil
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port" and checks
// that host is a DNS name or an IP address and port a TCP port.
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("has an unclosed \"[\"")
		}
		host, rest := s[:end+1], s[end+1:]
		if ip := net.ParseIP(host[1 : len(host)-1]); ip == nil || ip.To4() != nil {
			return "", "", errors.New("has brackets around something that is not an IPv6 address")
		}
		if rest == "" {
			return host, "", nil
		}
		p, ok := strings.CutPrefix(rest, ":")
		if !ok {
			return "", "", errors.New("has text after the IPv6 address")
		}
		return host, p, checkPort(p)
	}
	host, port, hasPort := strings.Cut(s, ":")
	if hasPort {
		if err := checkPort(port); err != nil {
			return "", "", err
		}
	}
	if net.ParseIP(host) != nil {
		return host, port, nil
	}
	if !validDNSName(host) {
		return "", "", errors.New("is not a valid host name")
	}
	return host, port, nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || p[0] == '0' {
		return errors.New("has a port that is not a number from 1 to 65535")
	}
	return nil
}

// validDNSName accepts letters, digits and hyphens in dot-separated labels
// of 1 to 63 characters, not starting or ending with a hyphen.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
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
