package creds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"

	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// maxEntrySize caps a cache entry; a real one is a few KiB.
const maxEntrySize = 64 << 10

// cache is the on-disk token cache (SPEC §5): one small JSON file per key,
// private to the user, replaced atomically, with a lock file beside it so
// that concurrent processes make one exchange between them.
type cache struct {
	dir  string
	logf func(string, ...any)
}

// cacheEntry is a cache file's content. The token is wrapped in JSON, not
// stored bare, so that a truncated file fails to parse instead of passing
// as a JWT with half a signature.
type cacheEntry struct {
	Token string `json:"token"`
}

// openCache prepares dir (0700, owned by us) for use. An error means the
// cache cannot be used; the caller carries on without it.
func openCache(dir string, logf func(string, ...any)) (*cache, error) {
	// One stat on the hot path; the folder is made only the first time.
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			fi, err = os.Lstat(dir)
		}
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", dir)
	}
	if !ownedByMe(fi) {
		return nil, fmt.Errorf("%s belongs to another user", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// Tokens must not be readable by others; tighten a folder we own.
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, err
		}
	}
	return &cache{dir: dir, logf: logf}, nil
}

// cacheKey names the entry for one (issuer, identity, audience, ambient
// iss, ambient sub): tokens for different identities or callers never mix.
func cacheKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

func (c *cache) path(key string) string { return filepath.Join(c.dir, key+".json") }

// load returns the cached token for key if it has more than Margin of life
// left at now. Anything odd about the file (foreign owner, loose mode,
// corrupt content) makes it a miss, so the next store replaces it.
func (c *cache) load(key string, now time.Time) (exchange.Token, bool) {
	tok, err := c.read(key)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.logf("cache: ignoring entry %s: %v", key, err)
		}
		return exchange.Token{}, false
	}
	if left := tok.Expiry.Sub(now); left <= Margin {
		c.logf("cache: entry %s has %s left, under the %s margin", key, left.Round(time.Second), Margin)
		return exchange.Token{}, false
	}
	return tok, true
}

func (c *cache) read(key string) (exchange.Token, error) {
	f, err := os.OpenFile(c.path(key), os.O_RDONLY|noFollow, 0)
	if err != nil {
		return exchange.Token{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return exchange.Token{}, err
	}
	switch {
	case !fi.Mode().IsRegular():
		return exchange.Token{}, errors.New("not a regular file")
	case !ownedByMe(fi):
		return exchange.Token{}, errors.New("owned by another user")
	case fi.Mode().Perm()&0o077 != 0:
		return exchange.Token{}, fmt.Errorf("mode %v is readable by others", fi.Mode().Perm())
	case fi.Size() > maxEntrySize:
		return exchange.Token{}, errors.New("too large")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxEntrySize))
	if err != nil {
		return exchange.Token{}, err
	}
	var e cacheEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return exchange.Token{}, errors.New("corrupt (not JSON)")
	}
	tok, err := exchange.ParseToken(e.Token)
	if err != nil {
		return exchange.Token{}, errors.New("corrupt (not a token)")
	}
	return tok, nil
}

// store writes tok under key atomically: a temporary file in the same
// folder, synced, then renamed over the entry, so a reader sees the old
// entry or the new one and never half of one.
func (c *cache) store(key string, tok exchange.Token) error {
	b, err := json.Marshal(cacheEntry{Token: tok.Raw})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(c.dir, key+".*.tmp") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, c.path(key))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// lock takes the cross-process lock for key, waiting while another process
// holds it (that process is exchanging; its entry is read after).
func (c *cache) lock(ctx context.Context, key string) (unlock func(), err error) {
	fl := flock.New(filepath.Join(c.dir, key+".lock"))
	ok, err := fl.TryLockContext(ctx, 10*time.Millisecond)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("lock not taken")
	}
	return func() { fl.Unlock() }, nil
}
