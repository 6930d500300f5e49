package creds

import (
	"errors"
	"io/fs"
	"path/filepath"
	"time"
)

// maxInspected caps the names InspectCache reads from the cache folder; a
// node serving many service accounts has a few hundred.
const maxInspected = 4096

// CacheReport describes the token cache as `get` would use it, from the
// folder's metadata and the entries' recorded expiry. It never holds an
// entry's content.
type CacheReport struct {
	// Off says why the cache is not used at all (CHAINGUARD_NO_CACHE, no
	// cache folder); empty when it is configured.
	Off string
	// Dir is the folder the entries are kept in: the configured folder,
	// or its private subfolder docker-credential-cgr-<uid> when the
	// configured one is shared (docs/reference.md#private-folder-rules).
	Dir string
	// Exists is false while Dir has not been made; the first get makes it.
	Exists bool
	// Problem says why the cache cannot be used, as `get` would log it
	// (a folder of another user, one open to others); empty when it can.
	// An unusable cache costs an exchange per call, never a failure.
	Problem string
	// Mode and Owner (a user id, -1 when unknown) are Dir's.
	Mode  fs.FileMode
	Owner int
	// Entries counts the cached tokens; Valid those whose trusted expiry
	// is after the time given, and ValidUntil is the latest such expiry.
	Entries, Valid int
	ValidUntil     time.Time
	// Ignored counts entries get would ignore (corrupt, not ours, open
	// to others); the next exchange for their key replaces them.
	Ignored int
	// Truncated says the folder held more names than were read.
	Truncated bool
}

// InspectCache reports on cfg's token cache at now. It applies the same
// folder rules as get (it opens the folder the way get does) but creates
// nothing: a folder or private subfolder not made yet is reported as such.
func InspectCache(cfg Config, now time.Time) CacheReport {
	switch {
	case cfg.NoCache:
		return CacheReport{Off: "CHAINGUARD_NO_CACHE (or the config file's no_cache) turns it off"}
	case cfg.CacheDir == "":
		return CacheReport{Off: "there is no cache folder (no home folder to put it in); set CHAINGUARD_CACHE_DIR"}
	}
	dir := filepath.Clean(cfg.CacheDir)
	r := CacheReport{Dir: dir, Owner: -1}
	root, fi, err := openDirRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return r
	}
	r.Exists = true
	if err != nil {
		r.Problem = pathErr(err).Error()
		return r
	}
	defer func() { _ = root.Close() }()
	r.Mode, r.Owner = fi.Mode().Perm(), ownerID(fi)
	// A shared folder holds the entries in a private subfolder, unless it
	// belongs to someone else: then openCache refuses it before looking
	// inside (and before making anything).
	if shared := !ownedByMe(fi) || fi.Mode().Perm()&0o077 != 0; shared && (ownedByMe(fi) || ownerID(fi) == 0) {
		r.Dir = filepath.Join(dir, privateName())
		sub, err := root.Lstat(privateName())
		if errors.Is(err, fs.ErrNotExist) {
			r.Exists, r.Mode, r.Owner = false, 0, -1
			return r
		}
		if err == nil {
			r.Mode, r.Owner = sub.Mode().Perm(), ownerID(sub)
		}
	}
	c, err := openCache(dir, func(string, ...any) {})
	if err != nil {
		r.Problem = err.Error()
		return r
	}
	defer func() { _ = c.close() }()
	c.count(&r, now)
	return r
}

// count fills in r's entry counts from the folder's entries.
func (c *cache) count(r *CacheReport, now time.Time) {
	d, err := c.root.Open(".")
	if err != nil {
		r.Problem = pathErr(err).Error()
		return
	}
	names, _ := d.Readdirnames(maxInspected + 1)
	_ = d.Close()
	if len(names) > maxInspected {
		names, r.Truncated = names[:maxInspected], true
	}
	for _, name := range names {
		if _, kind, ok := splitCacheName(name); !ok || kind != entrySuffix {
			continue
		}
		r.Entries++
		tok, err := c.readEntry(name)
		switch {
		case err != nil:
			r.Ignored++
		case tok.Expiry.After(now):
			r.Valid++
			if tok.Expiry.After(r.ValidUntil) {
				r.ValidUntil = tok.Expiry
			}
		}
	}
}
