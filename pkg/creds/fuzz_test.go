package creds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Fuzz targets for the places where untrusted or secret-bearing text enters
// the domain package: server URLs and registry patterns, the ambient token,
// and the configuration (environment and config file). Each asserts
// properties of the result, not only the absence of a panic. The existing
// FuzzNormalizeHost (registry_test.go) covers NormalizeHost's shape; these
// add the matching, the secrets and the one-line rule.

// fzLineBreaks are what a log viewer may start a new line at.
const fzLineBreaks = "\r\n\v\f\u0085\u2028\u2029"

// fzNow is the clock the targets run at.
var fzNow = time.Unix(1_900_000_000, 0)

// FuzzRegistryMatch fuzzes CHAINGUARD_REGISTRY and a server URL:
//
//   - an entry holding a '*' anywhere but a leading "*." (a bare "*",
//     "*cgr.dev", "https://*.cgr.dev", "*.*.x") makes LoadConfig fail, with
//     an error that names the entry (issue 7, class 6);
//   - NormalizeHost's result is lower-case, trimmed, idempotent and has no
//     scheme, path, query, fragment or user info;
//   - a served server URL's host is exactly a configured host, or a proper
//     subdomain of a "*." entry's domain; and so is the host Go's URL parser
//     (what go-containerregistry and docker use) reads from the same URL.
func FuzzRegistryMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"cgr.dev,*.cgr.dev", "https://cgr.dev/"},
		{"cgr.dev,*.cgr.dev", "evil.com/.cgr.dev"},
		{"cgr.dev,*.cgr.dev", "https://evil.com@x.cgr.dev/v2/"},
		{"cgr.dev,*.cgr.dev", "https://x.cgr.dev@evil.com/"},
		{"cgr.dev,*.cgr.dev", "https://evil.com\\@x.cgr.dev"},
		{"cgr.dev,*.cgr.dev", "notcgr.dev"},
		{"cgr.dev,*.cgr.dev", ".cgr.dev"},
		{"*", "ghcr.io"},
		{"*cgr.dev", "evilcgr.dev"},
		{"https://*.cgr.dev", "x.cgr.dev"},
		{"*.*.cgr.dev", "a.b.cgr.dev"},
		{"Registry.Example.com:5000, localhost:5000", "REGISTRY.example.com:5000"},
		{"[::1]:5000", "http://[::1]:5000/v2/"},
		{"cgr.dev:443", "cgr.dev"},
		{" , ,", "cgr.dev"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, list, serverURL string) {
		cfg, err := LoadConfig(fzEnv(map[string]string{"XDG_CONFIG_HOME": "/nonexistent/fuzz", "CHAINGUARD_REGISTRY": list}))

		host := NormalizeHost(serverURL)
		switch {
		case host != strings.ToLower(host):
			t.Errorf("NormalizeHost(%q) = %q is not lower-case", serverURL, host)
		case host != strings.TrimSpace(host):
			t.Errorf("NormalizeHost(%q) = %q has surrounding space", serverURL, host)
		case strings.ContainsAny(host, "/?#@") || strings.Contains(host, "://"):
			t.Errorf("NormalizeHost(%q) = %q keeps a scheme, path, query, fragment or user info", serverURL, host)
		case NormalizeHost(host) != host:
			t.Errorf("NormalizeHost is not idempotent: %q -> %q -> %q", serverURL, host, NormalizeHost(host))
		}

		var entries []string
		if list == "" { // unset: the default list
			list = DefaultRegistry
		}
		for e := range strings.SplitSeq(list, ",") {
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}
		if bad := slices.IndexFunc(entries, fzBadPattern); bad >= 0 {
			if err == nil {
				t.Fatalf("CHAINGUARD_REGISTRY entry %q is neither a host nor *.domain, yet the configuration was accepted", entries[bad])
			}
			// The error names a bad entry (or describes it by shape): this
			// one, or one before it that the loader refused first by rules
			// of its own. Only
			// checked when all of those are short enough to be shown
			// whole; a long one is rightly cut.
			named, checkable := false, true
			for _, e := range entries[:bad+1] {
				checkable = checkable && len(e) <= 64
				// Named, or described by its shape where it might be a
				// pasted secret (the setting's value is never echoed then).
				named = named || strings.Contains(err.Error(), e) || strings.Contains(err.Error(), fzQuoted(e)) ||
					strings.Contains(err.Error(), strconv.Itoa(len(e))+" bytes")
			}
			if checkable && !named {
				t.Errorf("the error does not name the bad entry %q: %v", entries[bad], err)
			}
		}
		if err != nil {
			if strings.ContainsAny(err.Error(), fzLineBreaks) {
				t.Errorf("the error is not one line: %q", err)
			}
			return
		}
		h, err := New(cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if !h.Serves(serverURL) {
			return
		}
		if !fzOracleServes(entries, host) {
			t.Fatalf("serves %q (host %q), which is no configured host nor a proper subdomain of a *. entry in %q", serverURL, host, list)
		}
		// What a URL parser says the host is, where it can parse the URL.
		raw := serverURL
		if !strings.Contains(raw, "://") {
			raw = "https://" + strings.TrimSpace(raw)
		}
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			uh := strings.ToLower(u.Host)
			for strings.HasSuffix(uh, ":443") {
				uh = strings.TrimSuffix(uh, ":443")
			}
			if !fzOracleServes(entries, uh) {
				t.Fatalf("serves %q: NormalizeHost reads host %q, but a URL parser reads %q, which is not configured in %q", serverURL, host, uh, list)
			}
		}
	})
}

// fzBadPattern reports an entry the issue says must be refused: a '*'
// anywhere but as a leading "*." followed by a domain without '*'.
func fzBadPattern(e string) bool {
	rest, wild := strings.CutPrefix(e, "*.")
	if wild {
		return rest == "" || strings.Contains(rest, "*")
	}
	return strings.Contains(e, "*")
}

// fzOracleServes is an independent reading of the registry rules: host is
// exactly a configured host, or a proper subdomain of a "*." entry.
func fzOracleServes(entries []string, host string) bool {
	if host == "" {
		return false
	}
	for _, e := range entries {
		if rest, ok := strings.CutPrefix(e, "*."); ok {
			d := NormalizeHost(rest)
			if d != "" && strings.HasSuffix(host, "."+d) && len(host) > len(d)+1 {
				return true
			}
		} else if n := NormalizeHost(e); n != "" && n == host {
			return true
		}
	}
	return false
}

// FuzzParseAmbientToken fuzzes the ambient token as it comes from a file,
// a variable, GitHub Actions or the kubelet:
//
//   - a refusal wraps ErrBadAmbientToken, is one line, and never shows the
//     input or any dot-separated part of it of 16 bytes or more;
//   - an accepted token's Raw is (a substring of) the input, and no fmt verb
//     on the token shows Raw;
//   - Check's refusals are one line and never show Raw or its signature.
func FuzzParseAmbientToken(f *testing.F) {
	for _, s := range []string{
		"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2siLCJzdWIiOiJzIiwiYXVkIjoiaXNzdWVyLmVuZm9yY2UuZGV2IiwiZXhwIjoxOTAwMDAzNjAwfQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
		" eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.\n",
		`"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"`,
		"Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ.extra-part-extra-part",
		"eyJhbGciOiJSUzI1NiJ9.e30K.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
		"eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24gYXQgYWxsIG5vdCBqc29u.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
		"eyJhbGciOiJTUVVJUlJFTC1TSUdOSU5HLU1FVEhPRCJ9.e30.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
		"not-a-token-at-all-but-long",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		const source = "CHAINGUARD_IDENTITY_TOKEN"
		tok, err := ParseAmbientToken(raw, source)
		if err != nil {
			msg := err.Error()
			if !errors.Is(err, ErrBadAmbientToken) {
				t.Errorf("a refusal that does not wrap ErrBadAmbientToken: %q", msg)
			}
			if i := strings.IndexAny(msg, fzLineBreaks); i >= 0 {
				t.Errorf("the error is not one line: a line break at byte %d", i)
			}
			for _, s := range fzPieces(raw, 16) {
				if strings.Contains(msg, s) && fzEchoed(s, func(c string) string {
					_, err := ParseAmbientToken(strings.ReplaceAll(raw, s, c), source)
					return fzMsg(err)
				}) {
					t.Errorf("the error shows the token or a %d-byte part of it", len(s))
				}
			}
			return
		}
		r := tok.Raw()
		if r == "" || !strings.Contains(raw, r) {
			t.Fatalf("accepted token's Raw is not taken from the input")
		}
		if len(r) >= 16 {
			for _, s := range []string{tok.String(), tok.GoString(), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok)} {
				if strings.Contains(s, r) {
					t.Fatalf("formatting the token shows Raw")
				}
			}
		}
		if err := tok.Check(fzNow); err != nil {
			msg := err.Error()
			if i := strings.IndexAny(msg, fzLineBreaks); i >= 0 {
				t.Errorf("Check's error is not one line: a line break at byte %d", i)
			}
			if len(r) >= 16 && strings.Contains(msg, r) {
				t.Errorf("Check's error shows the token")
			}
			if sig := r[strings.LastIndexByte(r, '.')+1:]; len(sig) >= 16 && strings.Contains(msg, sig) && fzEchoed(sig, func(c string) string {
				tok, err := ParseAmbientToken(strings.ReplaceAll(raw, sig, c), source)
				if err != nil {
					return fzMsg(err)
				}
				return fzMsg(tok.Check(fzNow))
			}) {
				t.Errorf("Check's error shows the token's signature")
			}
		}
	})
}

// FuzzLoadConfig fuzzes the config file's body and the settings that can
// hold a secret or a hostile value (CHAINGUARD_IDENTITY_TOKEN,
// CHAINGUARD_REGISTRY, CHAINGUARD_ISSUER), then goes as far as the
// configuration reaches without a network: LoadConfig, New and finding the
// ambient token. At every step:
//
//   - nothing panics, and an error is one line;
//   - no error shows the value of CHAINGUARD_IDENTITY_TOKEN (or the config
//     file's identity_token), nor any dot-separated part of it of 16 bytes
//     or more, nor the user info of CHAINGUARD_ISSUER (or the file's
//     issuer), as a whole or its password, whether or not the URL parses.
//
// A value of 6 bytes or more counts (shorter ones match ordinary words); a
// match that is the message's own fixed text, not an echo, is told apart by
// running again with the secret changed.
func FuzzLoadConfig(f *testing.F) {
	const jwtish = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	for _, s := range []struct {
		body                    string
		token, registry, issuer string
	}{
		{"", "", "", ""},
		{`{"identity":"x","registries":["cgr.dev"]}`, jwtish, "cgr.dev", "https://issuer.enforce.dev"},
		{`{"identity_token":"` + jwtish + `x"}`, "", "", ""},
		{`{"issuer":"https://user:hunter2hunter2@sts.example"}`, "", "", ""},
		{`{"issuer":"http://us er:pass word@sts.example/%zz"}`, "", "", ""},
		{`{not json`, `"` + jwtish + `"`, "", ""},
		{`{"registries":"cgr.dev"}`, "Bearer " + jwtish, "*", "https://user:supersecret@sts.example"},
		{"null", jwtish + "\n", "a,,b", "https://user:pa ss@[::1/"},
		{`{"no_cache":"yes"}`, "'" + jwtish, "cgr.dev\nx", "ftp://u:secretsecret@h"},
		{"{}", "Bearer " + jwtish, "", ""},
		{"{}", `"` + jwtish + `"`, "", ""},
		{"{}", jwtish + ".", "", ""},
		{`{"identity_token":"x` + jwtish + `"}`, "", "", ""},
		{"\xff\xfe", "eyJ" + strings.Repeat("A", 100), "", "https://:onlypassword@h"},
	} {
		f.Add([]byte(s.body), s.token, s.registry, s.issuer)
	}
	xdg := f.TempDir()
	cfgDir := filepath.Join(xdg, appName)
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		f.Fatal(err)
	}
	cfgFile := filepath.Join(cfgDir, "config.json")
	sandboxDir := f.TempDir()

	f.Fuzz(func(t *testing.T, body []byte, token, registry, issuer string) {
		// run goes through every step and returns the error messages seen.
		run := func(body []byte, token, issuer string) []string {
			if err := os.WriteFile(cfgFile, body, 0o600); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{
				"XDG_CONFIG_HOME":           xdg,
				"HOME":                      xdg,
				"CHAINGUARD_IDENTITY_TOKEN": token,
				"CHAINGUARD_REGISTRY":       registry,
				"CHAINGUARD_ISSUER":         issuer,
			}
			cfg, err := LoadConfig(fzEnv(env))
			if err != nil {
				return []string{fzMsg(err)}
			}
			cfg.tokenPath = filepath.Join(sandboxDir, "none")
			cfg.ActionsURL, cfg.ActionsToken = "", ""
			h, err := New(cfg, WithClock(func() time.Time { return fzNow }))
			if err != nil {
				return []string{fzMsg(err)}
			}
			// The token value may be taken as a path. The fuzzer must not
			// make a root process open /dev or /proc files: only paths
			// inside the package folder (relative, not climbing out) or the
			// test's own folders are tried.
			if p := strings.TrimSpace(cfg.IdentityToken); p != "" && !LooksLikeJWT(p) && !fzSafePath(p, sandboxDir, xdg) {
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = h.findAmbient(ctx)
			return []string{fzMsg(err)}
		}
		msgs := run(body, token, issuer)

		for _, msg := range msgs {
			if i := strings.IndexAny(msg, fzLineBreaks); i >= 0 {
				t.Errorf("an error is not one line: a line break at byte %d of %d", i, len(msg))
			}
		}
		joined := strings.Join(msgs, "\n")
		fileToken, fileIssuer := fzFileSecrets(body)
		type secret struct {
			name, value string
			rerun       func(canary string) string
		}
		var secrets []secret
		// A value naming a file that exists is a path, not a pasted
		// secret, and may be shown.
		_, statErr := os.Lstat(strings.TrimSpace(token))
		for _, s := range fzPieces(token, 6) {
			if statErr == nil {
				break
			}
			secrets = append(secrets, secret{"CHAINGUARD_IDENTITY_TOKEN", s, func(c string) string {
				return strings.Join(run(body, strings.ReplaceAll(token, s, c), issuer), "\n")
			}})
		}
		for _, s := range fzPieces(fileToken, 6) {
			secrets = append(secrets, secret{"the config file's identity_token", s, func(c string) string {
				return strings.Join(run([]byte(strings.ReplaceAll(string(body), s, c)), token, issuer), "\n")
			}})
		}
		for _, s := range fzUserinfoPieces(issuer) {
			secrets = append(secrets, secret{"CHAINGUARD_ISSUER's user info", s, func(c string) string {
				return strings.Join(run(body, token, fzReplaceUserinfo(issuer, s, c)), "\n")
			}})
		}
		for _, s := range fzUserinfoPieces(fileIssuer) {
			secrets = append(secrets, secret{"the config file issuer's user info", s, func(c string) string {
				return strings.Join(run([]byte(strings.ReplaceAll(string(body), s, c)), token, issuer), "\n")
			}})
		}
		for _, s := range secrets {
			if strings.Contains(joined, s.value) && fzEchoed(s.value, s.rerun) {
				t.Errorf("an error shows %s or a %d-byte piece of it (%d parts, starts like a JWT: %v)",
					s.name, len(s.value), strings.Count(s.value, ".")+1, strings.HasPrefix(s.value, "eyJ"))
			}
		}
	})
}

func fzEnv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func fzMsg(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fzQuoted is e as %q would show it, without the quotes.
func fzQuoted(e string) string { q := strconv.Quote(e); return q[1 : len(q)-1] }

// fzPieces is what must never be shown of a secret: the value itself
// (trimmed too) when at least minLen bytes, and each dot-separated part of 16
// bytes or more.
func fzPieces(secret string, minLen int) []string {
	var out []string
	for _, v := range []string{secret, strings.TrimSpace(secret)} {
		if len(v) >= minLen && (len(out) == 0 || out[0] != v) {
			out = append(out, v)
		}
	}
	if parts := strings.Split(secret, "."); len(parts) > 1 {
		for _, p := range parts {
			if len(p) >= 16 {
				out = append(out, p)
			}
		}
	}
	return out
}

// fzEchoed tells an echo of s from a coincidence (s being a piece of the
// message's own fixed text, which a fuzzer can produce): rerun makes the
// messages again with s changed to a same-length canary at the secret's
// place. s was echoed if the new messages no longer hold it.
func fzEchoed(s string, rerun func(canary string) string) bool {
	c := fzCanary(s)
	if c == s {
		return true // nothing to rotate: no way to tell, so it counts
	}
	return !strings.Contains(rerun(c), s)
}

// fzCanary rotates every letter and digit of s, keeping its length and shape.
func fzCanary(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + (c-'a'+1)%26
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + (c-'A'+1)%26
		case c >= '0' && c <= '9':
			b[i] = '0' + (c-'0'+1)%10
		}
	}
	return string(b)
}

// fzUserinfo is the user info of a URL-like string however broken the rest
// is: what lies between "://" and the last '@' before the path.
func fzUserinfo(u string) (start, end int) {
	i := strings.Index(u, "://")
	if i < 0 {
		return 0, 0
	}
	start = i + 3
	authority := u[start:]
	if j := strings.IndexAny(authority, "/?#"); j >= 0 {
		authority = authority[:j]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return 0, 0
	}
	return start, start + at
}

// fzUserinfoPieces is the user info (user:password) and the password, when
// 6 bytes or more.
func fzUserinfoPieces(u string) []string {
	start, end := fzUserinfo(u)
	info := u[start:end]
	var out []string
	if len(info) >= 6 {
		out = append(out, info)
	}
	if _, pass, ok := strings.Cut(info, ":"); ok && len(pass) >= 6 && pass != info {
		out = append(out, pass)
	}
	return out
}

func fzReplaceUserinfo(u, s, c string) string {
	start, end := fzUserinfo(u)
	return u[:start] + strings.ReplaceAll(u[start:end], s, c) + u[end:]
}

// fzFileSecrets reads identity_token and issuer from a config file body,
// leniently: whatever the loader could take from it.
func fzFileSecrets(body []byte) (token, issuer string) {
	var fc fileConfig
	_ = json.Unmarshal(body, &fc) // fills what it can before a type error
	return fc.IdentityToken, fc.Issuer
}

// fzSafePath reports whether a token path is one the fuzzer may have a root
// process open: relative and not climbing out of the package folder, or
// inside one of the test's folders.
func fzSafePath(p string, dirs ...string) bool {
	if strings.ContainsRune(p, 0) {
		return true // open refuses it
	}
	c := filepath.Clean(p)
	if !filepath.IsAbs(c) {
		return c != ".." && !strings.HasPrefix(c, "../")
	}
	for _, d := range dirs {
		if c == d || strings.HasPrefix(c, d+"/") {
			return true
		}
	}
	return false
}
