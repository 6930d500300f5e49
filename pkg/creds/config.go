package creds

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// Defaults for the settings docs/reference.md#environment-variables lists.
const (
	DefaultAudience  = "cgr.dev"
	DefaultRegistry  = "cgr.dev,*.cgr.dev"
	DefaultTokenPath = "/var/run/chainguard/oidc/oidc-token" //nolint:gosec // G101: a file path, not a credential
	DefaultTimeout   = 30 * time.Second

	// EnforceAudience is the audience an ambient token must carry for the
	// STS to accept it.
	EnforceAudience = "issuer.enforce.dev"

	// Margin is how much life a token must have left to be served from the
	// cache: enough for a slow pull to finish with it.
	Margin = 5 * time.Minute

	appName = "docker-credential-cgr"
)

// Config is everything the helper needs to know, resolved from the
// environment, the config file and defaults, in that order of precedence.
type Config struct {
	// Identity is the id of the assumable identity to request; empty asks
	// the STS for the caller's own identity.
	Identity string
	// IdentityToken is the ambient token itself, or a path to a file holding
	// one. Empty means look for a projected token (at DefaultTokenPath, in
	// a Config from LoadConfig), then ask GitHub Actions.
	IdentityToken string
	// Issuer is the STS base URL.
	Issuer string
	// Audience is the audience requested for registry tokens.
	Audience string
	// Registries lists the hosts served; "*.host" matches every subdomain.
	Registries []string
	// CacheDir is the token cache folder; empty disables the cache.
	CacheDir string
	// NoCache disables the on-disk cache.
	NoCache bool
	// Debug writes diagnostics (never a token) to stderr.
	Debug bool

	// ActionsURL and ActionsToken are GitHub Actions' OIDC request URL and
	// bearer (ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN).
	ActionsURL, ActionsToken string
	// Timeout bounds one credential request from its cache miss on: the
	// lock wait and the exchange, retries included. Nothing before the
	// miss can wait.
	Timeout time.Duration

	// tokenPath is where a projected token is looked for when IdentityToken
	// is empty: DefaultTokenPath from LoadConfig; empty, not looked for,
	// in a Config built by hand (set IdentityToken to DefaultTokenPath
	// there). Not a setting: tests point it away from /var/run.
	tokenPath string
}

// fileConfig is the on-disk shape of the helper's config file, written by
// configure-docker. Every field is optional.
type fileConfig struct {
	Identity      string   `json:"identity,omitempty"`
	IdentityToken string   `json:"identity_token,omitempty"`
	Issuer        string   `json:"issuer,omitempty"`
	Audience      string   `json:"audience,omitempty"`
	Registries    []string `json:"registries,omitempty"`
	CacheDir      string   `json:"cache_dir,omitempty"`
	NoCache       bool     `json:"no_cache,omitempty"`
}

// ConfigPath is the helper's own config file:
// $XDG_CONFIG_HOME/docker-credential-cgr/config.json, or
// $HOME/.config/docker-credential-cgr/config.json when XDG_CONFIG_HOME is
// unset, on every platform. Empty when neither is set.
func ConfigPath(getenv func(string) string) string {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, appName, "config.json")
}

// LoadConfig resolves the configuration: environment variables (read with
// getenv, usually os.Getenv) over the config file over defaults. A missing
// config file is fine; an unreadable, untrusted or malformed one is an error
// that names it, as is a malformed setting. No error quotes a value that
// could hold a secret.
func LoadConfig(getenv func(string) string) (Config, error) {
	cfg := Config{
		Issuer:     exchange.DefaultIssuer,
		Audience:   DefaultAudience,
		Registries: strings.Split(DefaultRegistry, ","),
		tokenPath:  DefaultTokenPath,
		Timeout:    DefaultTimeout,
	}
	// Without a user cache folder (no HOME, as for some system services)
	// the cache is simply off.
	if dir, err := os.UserCacheDir(); err == nil {
		cfg.CacheDir = filepath.Join(dir, appName)
	}

	if path := ConfigPath(getenv); path != "" {
		fc, err := readFileConfig(path)
		if err != nil {
			return Config{}, err
		}
		if err := fc.apply(&cfg); err != nil {
			return Config{}, fmt.Errorf("the config file %s: %w", logsafe.Quote(path, pathLimit), err)
		}
	}

	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&cfg.Identity, "CHAINGUARD_IDENTITY")
	set(&cfg.IdentityToken, "CHAINGUARD_IDENTITY_TOKEN")
	set(&cfg.Issuer, "CHAINGUARD_ISSUER")
	set(&cfg.Audience, "CHAINGUARD_AUDIENCE")
	set(&cfg.CacheDir, "CHAINGUARD_CACHE_DIR")
	set(&cfg.ActionsURL, "ACTIONS_ID_TOKEN_REQUEST_URL")
	set(&cfg.ActionsToken, "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	if v := getenv("CHAINGUARD_REGISTRY"); v != "" {
		regs, err := parseRegistries(v)
		if err != nil {
			return Config{}, fmt.Errorf("CHAINGUARD_REGISTRY: %w", err)
		}
		if len(regs) == 0 {
			return Config{}, errors.New("CHAINGUARD_REGISTRY names no registry host; set it to a comma-separated list such as cgr.dev,registry.example.com:5000, or unset it for cgr.dev")
		}
		cfg.Registries = regs
	}
	for _, b := range []struct {
		dst  *bool
		name string
	}{{&cfg.NoCache, "CHAINGUARD_NO_CACHE"}, {&cfg.Debug, "CHAINGUARD_DEBUG"}} {
		if v := getenv(b.name); v != "" {
			on, err := strconv.ParseBool(v)
			if err != nil {
				return Config{}, fmt.Errorf("%s=%s is not a boolean; set it to true or false", b.name, logsafe.Describe(v))
			}
			*b.dst = on
		}
	}
	return cfg, nil
}

// maxConfigSize caps the config file; a real one is a few hundred bytes.
const maxConfigSize = 64 << 10

// readFileConfig reads the helper's config file, which must be a regular
// file that only this user or root could have written (it names the STS
// the ambient token is sent to). It is opened without blocking, so a FIFO or
// device planted there fails at once.
func readFileConfig(path string) (fileConfig, error) {
	var fc fileConfig
	f, fi, err := openRegular(path, true)
	if errors.Is(err, fs.ErrNotExist) {
		return fc, nil
	}
	if err != nil {
		return fc, fmt.Errorf("cannot use the config file: %w; replace it with a regular file (configure-docker writes one) or remove it", pathErr(err))
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	if err := checkTrusted(path, fi); err != nil {
		return fc, fmt.Errorf("refusing the config file: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return fc, fmt.Errorf("cannot read the config file %s: %w", logsafe.Quote(path, pathLimit), pathErr(err))
	}
	if len(b) > maxConfigSize {
		return fc, fmt.Errorf("the config file %s is larger than %d bytes, so it is not this helper's config; fix or remove it", logsafe.Quote(path, pathLimit), maxConfigSize)
	}
	if err := json.Unmarshal(b, &fc); err != nil {
		return fc, fmt.Errorf("the config file %s is not valid JSON (%s); fix or remove it", logsafe.Quote(path, pathLimit), jsonProblem(err))
	}
	if err := checkKeys(b, fc.IdentityToken); err != nil {
		return fc, fmt.Errorf("the config file %s %w", logsafe.Quote(path, pathLimit), err)
	}
	return fc, nil
}

// fileKeys are the config file's keys, in the order of fileConfig.
func fileKeys() []string {
	t := reflect.TypeFor[fileConfig]()
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return keys
}

// maxUnknownShown caps how many unknown keys one message names.
const maxUnknownShown = 5

// checkKeys refuses a config file with a key the helper does not know. A
// misspelt key would otherwise be dropped in silence, and an exchange
// without the intended identity or issuer fails far from the cause. Keys
// match in any case, as encoding/json matches them. doc is valid JSON;
// token is its identity_token, which no message may show, even pasted as a
// key.
func checkKeys(doc []byte, token string) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return fmt.Errorf("is not valid JSON (%s); fix or remove it", jsonProblem(err))
	}
	known := fileKeys()
	var unknown []string
	for k := range top {
		if !slices.ContainsFunc(known, func(name string) bool { return strings.EqualFold(k, name) }) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	shown := make([]string, 0, maxUnknownShown+1)
	for _, k := range unknown[:min(len(unknown), maxUnknownShown)] {
		shown = append(shown, describeKey(k, token)+keyHint(k, known))
	}
	what := "an unknown key"
	if len(unknown) > 1 {
		what = "unknown keys"
	}
	if n := len(unknown) - len(shown); n > 0 {
		shown = append(shown, fmt.Sprintf("and %d more", n))
	}
	return fmt.Errorf("has %s %s; its keys are %s: fix or remove it", what, strings.Join(shown, ", "), strings.Join(known, ", "))
}

// describeKey names a key from the config file in a message: quoted and
// capped, or by its shape when it could be a token pasted as a key: it
// looks like one, or holds the file's identity_token (token) or a long
// dot-separated part of it.
func describeKey(k, token string) string {
	if logsafe.MightBeSecret(k) || holdsSecret(k, token) {
		return "(key not shown: " + logsafe.Shape(k) + ")"
	}
	return logsafe.Quote(k, 64)
}

// holdsSecret reports whether s contains secret (6 bytes or more once
// trimmed; shorter ones match ordinary words) or a long dot-separated part
// of it: whatever logsafe.Redact would hide.
func holdsSecret(s, secret string) bool {
	t := strings.TrimSpace(secret)
	return len(t) >= 6 && logsafe.Redact(s, t) != s
}

// keyHint suggests the known key an unknown key k most likely meant
// ("idenity", "identityToken", "CHAINGUARD_ISSUER", "registry"), as
// ` (did you mean "identity"?)`, or "" when none is close.
func keyHint(k string, known []string) string {
	if len(k) > 64 {
		return ""
	}
	k = strings.TrimPrefix(strings.ToLower(k), "chainguard_")
	if k == "debug" {
		return " (debug output is set by CHAINGUARD_DEBUG only)"
	}
	best, bestDist := "", 3 // at most 2 edits, 3 for the longer keys
	if len(k) >= 8 {
		bestDist = 4
	}
	for _, name := range known {
		if d := editDistance(k, name); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, by bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// jsonProblem says what is wrong with a JSON document without quoting it:
// the file may hold a token.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s must be a %s, not a JSON %s", logsafe.Quote(typ.Field, 64), typ.Type, typ.Value)
	}
	return "cannot be decoded"
}

// pathErr drops *fs.PathError's operation prefix but keeps the path and the
// reason: "open /x: permission denied" reads as "/x: permission denied".
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", logsafe.Quote(pe.Path, pathLimit), pe.Err)
	}
	return err
}

func (fc fileConfig) apply(cfg *Config) error {
	if fc.Identity != "" {
		cfg.Identity = fc.Identity
	}
	if fc.IdentityToken != "" {
		cfg.IdentityToken = fc.IdentityToken
	}
	if fc.Issuer != "" {
		cfg.Issuer = fc.Issuer
	}
	if fc.Audience != "" {
		cfg.Audience = fc.Audience
	}
	if len(fc.Registries) > 0 {
		regs, err := parseRegistries(fc.Registries...)
		if err != nil {
			return fmt.Errorf("registries: %w", err)
		}
		if len(regs) > 0 {
			cfg.Registries = regs
		}
	}
	if fc.CacheDir != "" {
		cfg.CacheDir = fc.CacheDir
	}
	cfg.NoCache = cfg.NoCache || fc.NoCache
	return nil
}
