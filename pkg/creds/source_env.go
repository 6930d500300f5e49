package creds

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// identityTokenSource is CHAINGUARD_IDENTITY_TOKEN (or the config file's
// identity_token): the token itself, or the path of a file holding it.
type identityTokenSource string

func (identityTokenSource) String() string  { return "CHAINGUARD_IDENTITY_TOKEN" }
func (identityTokenSource) Missing() string { return "unset" }

// Enabled is true for any value: a value that is neither a token nor a
// file is an error to report, not a reason to look elsewhere.
func (s identityTokenSource) Enabled() bool { return strings.TrimSpace(string(s)) != "" }

func (s identityTokenSource) Provide(context.Context) (AmbientToken, error) {
	v := strings.TrimSpace(string(s))
	if LooksLikeJWT(v) {
		return ParseAmbientToken(v, "CHAINGUARD_IDENTITY_TOKEN")
	}
	return readIdentityTokenFile(v)
}

// readIdentityTokenFile reads CHAINGUARD_IDENTITY_TOKEN's value as a path.
// The value is what the user typed, and may be a token with something
// around it (quotes, "Bearer "): messages then describe it by shape only.
func readIdentityTokenFile(v string) (AmbientToken, error) {
	const setting = "CHAINGUARD_IDENTITY_TOKEN"
	// A file that reads is a path that exists, so it is named as one;
	// working out how to name anything else costs a stat, on errors only.
	text, fail := readTokenText(v)
	if fail == nil {
		return ParseAmbientToken(text, setting+" file "+logsafe.Quote(v, pathLimit))
	}
	// Only a value that exists as a file is shown: it is a path, not a
	// pasted secret. Anything else may be (part of) a token, whatever it
	// looks like, and is described by its shape.
	if _, lerr := os.Lstat(v); lerr == nil {
		return AmbientToken{}, fail(setting + " file " + logsafe.Quote(v, pathLimit))
	}
	shown := "(value not shown: " + logsafe.Shape(v) + pathHint(v) + ")"
	if dir := existingParent(v); dir != "" {
		// What exists is a path too, and says where the typo is.
		shown += "; the longest leading part of it that exists is the folder " + logsafe.Quote(dir, pathLimit)
	}
	if err := fail(setting + " file " + shown); !errors.Is(err, fs.ErrNotExist) {
		return AmbientToken{}, err
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
