package creds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// maxTokenSize caps what is read from a token file or endpoint: a JWT is a
// few KiB; anything far larger is not one.
const maxTokenSize = 64 << 10

// AmbientToken is the OIDC token the workload already has. Its claims are
// read without verifying the signature: the STS verifies it, and the claims
// are needed only to check it early, explain failures and key the cache.
type AmbientToken struct {
	raw string
	// Source says where the token came from, for messages.
	Source   string
	Issuer   string
	Subject  string
	Audience []string
	Expiry   time.Time
}

// Raw returns the token itself, for sending to the STS. Never log it.
func (t AmbientToken) Raw() string { return t.raw }

// String describes the token without its secret.
func (t AmbientToken) String() string {
	return fmt.Sprintf("token from %s (iss=%s sub=%s aud=%s exp=%s)",
		t.Source, t.Issuer, t.Subject, strings.Join(t.Audience, ","), t.Expiry.UTC().Format(time.RFC3339))
}

// GoString keeps %#v from printing the secret.
func (t AmbientToken) GoString() string { return "creds.AmbientToken{" + t.String() + "}" }

// ParseAmbientToken reads the claims of an ambient token with
// exchange.ParseClaims, without verifying it: the STS does that. source
// names where it came from, for error messages. Surrounding white space (a
// file's trailing newline) is ignored; any other wrapping is an error that
// describes the value's shape and never shows it. A token without exp
// parses, and Check refuses it.
func ParseAmbientToken(raw, source string) (AmbientToken, error) {
	raw = strings.TrimSpace(raw)
	c, err := exchange.ParseClaims(raw)
	if err != nil {
		return AmbientToken{}, fmt.Errorf("%w: the token from %s is not a JWT (%s); it must be an OIDC ID token, with nothing around it but white space",
			ErrBadAmbientToken, source, logsafe.Shape(raw))
	}
	return AmbientToken{raw: raw, Source: source, Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience, Expiry: c.Expiry}, nil
}

// Check is the pre-flight check of the token against what the STS needs, so
// the common mistakes get a precise message instead of the STS's.
func (t AmbientToken) Check(now time.Time) error {
	if t.Expiry.IsZero() {
		return fmt.Errorf("%w: the token from %s has no exp claim; use a short-lived OIDC token", ErrBadAmbientToken, t.Source)
	}
	if !now.Before(t.Expiry) {
		return fmt.Errorf("%w: the token from %s expired at %s (%s ago); projected tokens are refreshed by the kubelet, so check the token path, or mint a new token",
			ErrTokenExpired, t.Source, t.Expiry.UTC().Format(time.RFC3339), now.Sub(t.Expiry).Round(time.Second))
	}
	if !slices.Contains(t.Audience, EnforceAudience) {
		found := "none"
		if len(t.Audience) > 0 {
			found = strings.Join(t.Audience, ",")
		}
		return fmt.Errorf("%w: the token from %s has audience %q, but the STS needs %q; request or project the token with audience %s",
			ErrWrongAudience, t.Source, found, EnforceAudience, EnforceAudience)
	}
	return nil
}

// FindAmbientToken looks for the ambient token where SPEC §4 says, in
// order, reading it fresh every time (projected tokens rotate):
// cfg.IdentityToken (a JWT or a file), cfg.TokenPath, GitHub Actions OIDC.
func FindAmbientToken(ctx context.Context, cfg Config, client *http.Client) (AmbientToken, error) {
	if v := strings.TrimSpace(cfg.IdentityToken); v != "" {
		if LooksLikeJWT(v) {
			return ParseAmbientToken(v, "CHAINGUARD_IDENTITY_TOKEN")
		}
		return readIdentityTokenFile(v)
	}
	var looked []string
	looked = append(looked, "CHAINGUARD_IDENTITY_TOKEN (unset)")
	if cfg.TokenPath != "" {
		// One open, no stat first: the file is read on every get.
		tok, err := readTokenFile(cfg.TokenPath, cfg.TokenPath)
		if !errors.Is(err, fs.ErrNotExist) {
			return tok, err
		}
		looked = append(looked, logsafe.Quote(cfg.TokenPath, pathLimit)+" (no such file)")
	}
	if usesActions(cfg) {
		return githubActionsToken(ctx, cfg.ActionsURL, cfg.ActionsToken, client)
	}
	looked = append(looked, "GitHub Actions OIDC (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN unset; the job needs permissions: id-token: write)")
	return AmbientToken{}, fmt.Errorf("%w: looked at %s; set CHAINGUARD_IDENTITY_TOKEN to a token or a token file, or project a service-account token with audience %s to %s",
		ErrNoAmbientToken, strings.Join(looked, ", "), EnforceAudience, DefaultTokenPath)
}

// usesActions reports whether FindAmbientToken would ask GitHub Actions for
// the token, judged without the network: no explicit token, no projected
// token file, and the Actions variables set.
func usesActions(cfg Config) bool {
	if strings.TrimSpace(cfg.IdentityToken) != "" || cfg.ActionsURL == "" || cfg.ActionsToken == "" {
		return false
	}
	if cfg.TokenPath != "" {
		if _, err := os.Lstat(cfg.TokenPath); err == nil {
			return false
		}
	}
	return true
}

// pathLimit caps a path shown in a message.
const pathLimit = 256

// LooksLikeJWT tells a JWT from a path, as CHAINGUARD_IDENTITY_TOKEN may be
// either: a JWT's header is base64url JSON, so it starts "eyJ" and has
// exactly three dot-separated parts.
func LooksLikeJWT(s string) bool {
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2 && !strings.ContainsAny(s, "/\\ \n")
}

// readIdentityTokenFile reads CHAINGUARD_IDENTITY_TOKEN's value as a path.
// The value is what the user typed, and may be a token with something
// around it (quotes, "Bearer "): messages then describe it by shape only.
func readIdentityTokenFile(v string) (AmbientToken, error) {
	const setting = "CHAINGUARD_IDENTITY_TOKEN"
	// Only a value that exists as a file is shown: it is a path, not a
	// pasted secret. Anything else may be (part of) a token, whatever it
	// looks like, and is described by its shape.
	shown := "(value not shown: " + logsafe.Shape(v) + pathHint(v) + ")"
	if _, err := os.Lstat(v); err == nil {
		shown = logsafe.Quote(v, pathLimit)
	} else if dir := existingParent(v); dir != "" {
		// What exists is a path too, and says where the typo is.
		shown += "; the longest leading part of it that exists is the folder " + logsafe.Quote(dir, pathLimit)
	}
	tok, err := readTokenFile(v, setting+" file "+shown)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	hint := "set it to the token itself or to the path of a file holding it (surrounding white space is ignored)"
	if strings.Contains(v, "eyJ") {
		hint = "it holds something like a token with other text around it (quotes, a prefix such as \"Bearer \", a stray character); " +
			"set it to the bare token, or to the path of a file holding it (surrounding white space is ignored)"
	}
	return AmbientToken{}, fmt.Errorf("%w: %s is not a JWT, and as a path it does not exist: %s; %s", ErrBadAmbientToken, setting, shown, hint)
}

// existingParent is the longest leading folder of v that exists, other
// than the root or the working folder, or "".
func existingParent(v string) string {
	for dir := filepath.Dir(v); dir != "." && dir != string(filepath.Separator); dir = filepath.Dir(dir) {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
	}
	return ""
}

// pathHint says whether a value has the look of a path, without showing it.
func pathHint(v string) string {
	switch {
	case strings.HasPrefix(v, "/"):
		return ", starts with / like an absolute path"
	case strings.ContainsAny(v, "/\\"):
		return ", holds a path separator"
	}
	return ""
}

// readTokenFile reads a token file. Links are followed (the kubelet's
// projected tokens are symlinks into a ..data folder), but only a regular
// file is opened, without blocking: a FIFO, socket or device fails at once.
// source names the file in messages.
func readTokenFile(path, source string) (AmbientToken, error) {
	f, _, err := openRegular(path, true)
	if err != nil {
		var nr *notRegularError
		var pe *fs.PathError
		switch {
		case errors.As(err, &nr):
			return AmbientToken{}, fmt.Errorf("%w: %s is %s, not a regular file; point it at the token file itself", ErrBadAmbientToken, source, kindOf(nr.mode))
		case errors.Is(err, fs.ErrNotExist):
			return AmbientToken{}, fmt.Errorf("%w: %s does not exist; check the path: %w", ErrBadAmbientToken, source, fs.ErrNotExist)
		case errors.As(err, &pe):
			err = pe.Err // its text repeats the path unquoted
		}
		return AmbientToken{}, fmt.Errorf("%w: cannot read %s: %w; check the path and its permissions", ErrBadAmbientToken, source, err)
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	b, err := io.ReadAll(io.LimitReader(f, maxTokenSize+1))
	if err != nil {
		return AmbientToken{}, fmt.Errorf("%w: cannot read %s: %w", ErrBadAmbientToken, source, err)
	}
	if len(b) > maxTokenSize {
		return AmbientToken{}, fmt.Errorf("%w: %s is larger than %d bytes, so it is not a token file", ErrBadAmbientToken, source, maxTokenSize)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return AmbientToken{}, fmt.Errorf("%w: %s is empty; the token has not been written yet, or the wrong file is named", ErrBadAmbientToken, source)
	}
	return ParseAmbientToken(string(b), source)
}

// githubActionsToken asks the Actions runtime for an ID token with the STS's
// audience, the way actions/core's getIDToken does.
func githubActionsToken(ctx context.Context, requestURL, requestToken string, client *http.Client) (AmbientToken, error) {
	const source = "GitHub Actions OIDC"
	u, err := url.Parse(requestURL)
	if err != nil || u.Host == "" {
		// url.Parse's error quotes the whole value, user info included.
		return AmbientToken{}, fmt.Errorf("%w: ACTIONS_ID_TOKEN_REQUEST_URL is not a URL (value not shown: %s)", ErrBadAmbientToken, logsafe.Shape(requestURL))
	}
	q := u.Query()
	q.Set("audience", EnforceAudience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return AmbientToken{}, fmt.Errorf("%w: %s: cannot build the token request for host %s", ErrBadAmbientToken, source, logsafe.Quote(u.Host, pathLimit))
	}
	req.Header.Set("Authorization", "Bearer "+requestToken)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return AmbientToken{}, fmt.Errorf("%w: cannot reach the GitHub Actions token endpoint %s: %w", ErrNoAmbientToken, logsafe.Quote(u.Host, pathLimit), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenSize))
	if err != nil {
		return AmbientToken{}, fmt.Errorf("%w: reading the GitHub Actions token: %w", ErrNoAmbientToken, err)
	}
	if resp.StatusCode != http.StatusOK {
		return AmbientToken{}, fmt.Errorf("%w: the GitHub Actions token endpoint answered %s; the job needs permissions: id-token: write", ErrNoAmbientToken, resp.Status)
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Value == "" {
		return AmbientToken{}, fmt.Errorf("%w: the GitHub Actions token endpoint answered without a token", ErrBadAmbientToken)
	}
	return ParseAmbientToken(out.Value, source)
}
