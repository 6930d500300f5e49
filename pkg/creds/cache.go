package creds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

const (
	// maxEntrySize caps a cache entry or failure marker; a real one is a
	// few KiB.
	maxEntrySize = 64 << 10

	// maxTrustedLifetime is the longest life a cached token is trusted to
	// have left. Entries are written with their expiry capped to it, so an
	// entry claiming more was not written by this helper with a sane clock
	// and is treated as corrupt.
	maxTrustedLifetime = time.Hour

	// clockSlack lets load accept an entry a little beyond
	// maxTrustedLifetime: it was capped by the clock of the process that
	// stored it, which may be a little ahead (a clock step, another clock).
	clockSlack = time.Minute

	// lockPoll is how long a waiter first waits before retrying a lock
	// another process holds. Each later wait is half as long again, up to
	// lockPollMax, and jittered: 512 waiters retrying every 10 ms on 2
	// cores left the holder too little CPU to finish its exchange within
	// the waiters' budget, and most of them then exchanged too.
	lockPoll    = 10 * time.Millisecond
	lockPollMax = 50 * time.Millisecond
)

// File names in the cache folder: <key>.json (entry), <key>.lock (exchange
// lock), <key>.fail (failure marker), <key>.<16 hex>.tmp (being written).
// The sweep removes nothing that does not follow this scheme.
const (
	entrySuffix = ".json"
	lockSuffix  = ".lock"
	failSuffix  = ".fail"
	tmpSuffix   = ".tmp"
)

// errLockWait says another process held the exchange lock for longer than
// the caller would wait; the caller then exchanges without the cache.
var errLockWait = errors.New("timed out waiting for another process that is exchanging for the same key")

// errReady is lockWait's answer when what the lock's holder was exchanging
// for became ready while waiting.
var errReady = errors.New("ready while waiting for the lock")

// cache is the on-disk token cache (docs/reference.md#token-cache): one small JSON file per key,
// private to the user, replaced atomically, with a lock file beside it so
// that concurrent processes make one exchange between them.
//
// Every file operation is relative to root, the folder descriptor that
// openCache checked, or to fd, the same folder opened again and proved the
// same, so swapping a component of the folder's path later cannot redirect
// a read, a write or a removal. Existing files are opened through fd, with
// openAt, to keep them out of Go's poller, which os.Root cannot do.
type cache struct {
	root *os.Root
	fd   int
	dir  string // the checked folder's path, for messages
	logf func(string, ...any)
}

// failureMarker records that the lock holder's exchange failed, so that
// the callers that were waiting for it share the failure (see loadFailure).
type failureMarker struct {
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// openCache opens the cache folder dir, making it (0700) if it is missing.
// An error means the cache cannot be used; the caller carries on without
// it. The helper never changes the mode of a folder it did not create:
//
//   - dir owned by the effective user with no group or other permission
//     bits is used as it is;
//   - any other folder (shared like /tmp, someone else's, group-readable)
//     holds the tokens in a private subfolder docker-credential-cgr-<euid>,
//     made 0700 by us; if that already exists it must be a real folder
//     (not a symlink) of ours with no group or other bits, else the cache
//     is disabled.
//
// A symlinked dir is followed (~/.cache on another disk is common) and what
// it points to is checked by the rules above. dir, dir/ and dir/. are the
// same folder: dir is opened as "dir/.", which also makes a FIFO or other
// non-folder at dir fail at once instead of blocking the open.
func openCache(dir string, logf func(string, ...any)) (*cache, error) {
	if dir == "" {
		return nil, errors.New("no cache folder configured")
	}
	if !cacheSupported {
		return nil, errors.New("the token cache is off on this platform: its folder cannot be proved private")
	}
	dir = filepath.Clean(dir)
	root, fi, err := openDirRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Mkdir never follows a symlink at dir, so a dangling one fails
		// here instead of making its target.
		if err = os.MkdirAll(dir, 0o700); err == nil {
			root, fi, err = openDirRoot(dir)
		}
	}
	if err != nil {
		return nil, err
	}
	if ownedByMe(fi) && fi.Mode().Perm()&0o077 == 0 {
		// dir/. as openDirRoot opened it: links in dir are followed.
		return newCache(root, atCWD, dir+string(filepath.Separator)+".", fi, dir, logf)
	}
	if uid := ownerID(fi); !ownedByMe(fi) && uid != 0 {
		// Its owner decides what is in it, and can rename whatever we put
		// there; and a root process has no business filling a user's
		// folder. Root's shared folders (/tmp) get the subfolder below.
		_ = root.Close()
		return nil, fmt.Errorf("%s belongs to user id %d, not to this user or root; point CHAINGUARD_CACHE_DIR at a folder of your own", logsafe.Quote(dir, pathLimit), uid)
	}
	defer func() { _ = root.Close() }()
	name := privateName()
	sub := filepath.Join(dir, name)
	before, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		if err = root.Mkdir(name, 0o700); err == nil || errors.Is(err, fs.ErrExist) {
			before, err = root.Lstat(name)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := checkPrivateDir(sub, before); err != nil {
		return nil, err
	}
	// name/. never follows a link swapped in after the Lstat out of the
	// folder, and the SameFile check catches one that stays inside it.
	priv, err := root.OpenRoot(name + string(filepath.Separator) + ".")
	if err != nil {
		return nil, err
	}
	after, err := priv.Stat(".")
	if err == nil && !os.SameFile(before, after) {
		err = fmt.Errorf("%s changed while it was being opened", logsafe.Quote(sub, pathLimit))
	}
	if err == nil {
		err = checkPrivateDir(sub, after)
	}
	var parent int
	if err == nil {
		// The subfolder is opened again by its bare name in the folder,
		// which is never followed: a link swapped in could lead anywhere,
		// such as a mount whose open hangs.
		parent, err = openDirAgain(atCWD, dir+string(filepath.Separator)+".", dir, fi)
	}
	if err != nil {
		_ = priv.Close()
		return nil, err
	}
	defer func() { _ = closeDir(parent) }()
	return newCache(priv, parent, name, after, sub, logf)
}

// newCache is the cache in the folder root, at dir, which fi describes. Its
// second descriptor is name opened in the folder at (see openDirAgain). It
// takes root over, closing it on failure.
func newCache(root *os.Root, at int, name string, fi fs.FileInfo, dir string, logf func(string, ...any)) (*cache, error) {
	fd, err := openDirAgain(at, name, dir, fi)
	if err != nil {
		_ = root.Close()
		return nil, err
	}
	return &cache{root: root, fd: fd, dir: dir, logf: logf}, nil
}

// privateName names the subfolder kept inside a cache folder that others
// can read or that belongs to someone else: one per effective user.
func privateName() string { return "docker-credential-cgr-" + strconv.Itoa(os.Geteuid()) }

// openDirRoot opens dir, following a symlink, and returns the folder's
// own FileInfo (from the open descriptor, not the path).
func openDirRoot(dir string) (*os.Root, fs.FileInfo, error) {
	root, err := os.OpenRoot(dir + string(filepath.Separator) + ".")
	if err != nil {
		return nil, nil, err
	}
	fi, err := root.Stat(".")
	if err != nil {
		_ = root.Close()
		return nil, nil, err
	}
	return root, fi, nil
}

// checkPrivateDir accepts fi (from Lstat or the open folder) only as a
// real folder of ours that no one else can read.
func checkPrivateDir(path string, fi fs.FileInfo) error {
	path = logsafe.Quote(path, pathLimit)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("cache folder %s is %s, not a folder", path, logsafe.FileKind(fi.Mode()))
	case !ownedByMe(fi):
		return fmt.Errorf("cache folder %s belongs to another user", path)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("cache folder %s has mode %v; it must not be open to group or others", path, fi.Mode().Perm())
	}
	return nil
}

// close releases the folder descriptor.
func (c *cache) close() error {
	fd := c.fd
	if fd < 0 {
		return nil
	}
	c.fd = -1 // the number may be reused once closed
	return errors.Join(closeDir(fd), c.root.Close())
}

// cacheKey hashes parts (see Helper.cacheKey) into an entry's name. Each
// part ends with a NUL, so ("ab", "c") and ("a", "bc") differ.
func cacheKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

func (c *cache) path(key string) string { return filepath.Join(c.dir, key+entrySuffix) }

// load returns the cached token for key if it has more than Margin of life
// left at now. Its Expiry is the one we trust: the entry's recorded expiry,
// which keep never set later than the JWT's own exp. Anything odd about the file (not a
// regular file, foreign owner, loose mode, corrupt content, an expiry
// further away than maxTrustedLifetime) makes it a miss, so the next store
// replaces it.
func (c *cache) load(key string, now time.Time) (exchange.Token, bool) {
	tok, err := c.readEntry(key + entrySuffix)
	if err == nil && tok.Expiry.Sub(now) > maxTrustedLifetime+clockSlack {
		err = fmt.Errorf("corrupt (trusted until %s, more than %s away)", tok.Expiry.UTC().Format(time.RFC3339), maxTrustedLifetime)
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
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

// readEntry parses the entry called name; the token's Expiry is the
// trusted one.
func (c *cache) readEntry(name string) (exchange.Token, error) {
	b, err := c.readPrivate(name)
	if err != nil {
		return exchange.Token{}, err
	}
	return parseEntry(b)
}

// parseEntry reads an entry as appendEntry writes it, the JSON
// {"token":"<JWT>","expiry":"<RFC 3339>"}, byte for byte and nothing
// else. The token is wrapped, not stored bare, so that a truncated file
// fails to parse instead of passing as a JWT with half a signature; the
// expiry is the one trusted when storing (the JWT's exp capped to
// maxTrustedLifetime), and an entry without it is from an older version
// and a miss. A JWT is made of characters JSON never escapes, so these are
// the only bytes json.Marshal would write for an entry. encoding/json took about
// 100,000 instructions to decode one, mostly scanning the token twice, the
// largest part of a cached get's own work; a test holds parseEntry to
// encoding/json on every input it accepts. Anything else, a hand-edited
// or truncated file among them, is a miss.
//
// The token is not parsed as a JWT again: keep wrote it after ParseToken
// had checked it, with the expiry it trusted (never later than the token's
// exp), into a folder only this user can write.
func parseEntry(b []byte) (exchange.Token, error) {
	s, ok := strings.CutPrefix(string(b), `{"token":"`)
	tok, s, ok2 := strings.Cut(s, `","expiry":"`)
	exp, rest, ok3 := strings.Cut(s, `"`)
	if !ok || !ok2 || !ok3 || rest != "}" {
		return exchange.Token{}, errors.New("corrupt (not an entry as this helper writes one)")
	}
	if !entryToken(tok) {
		return exchange.Token{}, errors.New("corrupt (not a token)")
	}
	var expiry time.Time
	// UnmarshalText is the strict RFC 3339 parser UnmarshalJSON uses.
	if err := expiry.UnmarshalText([]byte(exp)); err != nil || expiry.IsZero() {
		return exchange.Token{}, errors.New("no recorded expiry")
	}
	return exchange.Token{Raw: tok, Expiry: expiry}, nil
}

// entryToken is the token an entry may hold, the one test of appendEntry
// and parseEntry: LooksLikeJWT's shape, only a JWT's characters (so JSON
// never escapes one), and a signature.
func entryToken(tok string) bool {
	return logsafe.OnlyJWTChars(tok) && hasJWTShape(tok) && !strings.HasSuffix(tok, ".")
}

// readPrivate reads the file called name if it is a regular file of ours
// that no one else can read, without following a link or blocking.
func (c *cache) readPrivate(name string) ([]byte, error) {
	f, fi, err := c.openPrivate(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	if fi.Size() > maxEntrySize {
		return nil, errors.New("too large")
	}
	return readSized(f, fi.Size(), maxEntrySize)
}

// openPrivate opens the existing file called name. The open refuses a
// symlink (O_NOFOLLOW), and so does the Lstat before it; the open
// descriptor must be the file Lstat saw. The open is non-blocking and
// happens only for a regular file, so a FIFO or device is never opened.
func (c *cache) openPrivate(name string, flag int) (*os.File, fs.FileInfo, error) {
	// openat, unlike os.Root, would follow a path out of the folder.
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, filepath.Separator) {
		return nil, nil, fmt.Errorf("%s is not a file name", logsafe.Quote(name, pathLimit))
	}
	before, err := c.root.Lstat(name)
	if err != nil {
		return nil, nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, nil, &notRegularError{path: filepath.Join(c.dir, name), mode: before.Mode()}
	}
	f, err := openAt(c.fd, name, flag|noFollow|nonBlock, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkPrivateFile(filepath.Join(c.dir, name), before, fi)
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// checkPrivateFile accepts fi, of an open descriptor, only as the regular
// file before described, owned by us, with no group or other bits.
func checkPrivateFile(path string, before, fi fs.FileInfo) error {
	switch {
	case !fi.Mode().IsRegular() || !os.SameFile(before, fi):
		return fmt.Errorf("%s changed while it was being opened", logsafe.Quote(path, pathLimit))
	case !ownedByMe(fi):
		return fmt.Errorf("%s belongs to another user", logsafe.Quote(path, pathLimit))
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s has mode %v, open to group or others", logsafe.Quote(path, pathLimit), fi.Mode().Perm())
	}
	return nil
}

// storeAt writes tok under key, trusting it until the earlier of its exp
// and now+maxTrustedLifetime, clears the key's failure marker, and then
// sweeps a bounded number of stale files (see sweep): at most once per
// exchange, never on the cache-hit path.
func (c *cache) storeAt(key string, tok exchange.Token, now time.Time) error {
	exp := tok.Expiry
	if limit := now.Add(maxTrustedLifetime); exp.After(limit) {
		exp = limit
	}
	b, err := appendEntry(nil, tok.Raw, exp)
	if err != nil {
		return err
	}
	if err := c.writeAtomic(key, entrySuffix, b); err != nil {
		return err
	}
	c.removeOurs(key + failSuffix)
	c.sweep(now, key)
	return nil
}

// appendEntry appends the entry for raw and exp: the bytes json.Marshal
// writes for {"token": raw, "expiry": exp in UTC}, without its reflection,
// which a cold get would pay for in full. That is parseEntry's format, so
// a token parseEntry would refuse (a character JSON would escape, which
// ParseToken's base64 decoding lets through with line breaks, or a header
// not written as {"...) is refused here rather than stored as an entry
// that could never be read. FuzzAppendEntryIsJSONMarshal holds it to
// json.Marshal.
func appendEntry(b []byte, raw string, exp time.Time) ([]byte, error) {
	if !entryToken(raw) {
		return nil, errors.New("the token is not in the form the cache keeps")
	}
	b = append(b, `{"token":"`...)
	b = append(b, raw...)
	b = append(b, `","expiry":"`...)
	// In UTC: the same instant, and formatting it in the local zone would
	// load the zone database just for this.
	b = exp.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...), nil
}

// keep stores tok under key unless it has Margin or less left, when load
// would not serve it anyway. A failure is logged: the next call exchanges.
func (c *cache) keep(key string, tok exchange.Token, now time.Time) {
	if left := tok.Expiry.Sub(now); left <= Margin {
		c.logf("cache: not storing a token with only %s left", left.Round(time.Second))
		return
	}
	if err := c.storeAt(key, tok, now); err != nil {
		c.logf("cache: cannot store the token: %v", err)
	}
}

// keepFailure records a failed exchange with storeFailure, logging if it
// cannot: the waiters then try for themselves.
func (c *cache) keepFailure(key, msg string, at time.Time) {
	if err := c.storeFailure(key, msg, at); err != nil {
		c.logf("cache: cannot record the failure: %v", err)
	}
}

// storeFailure records that the exchange for key failed with msg at at, so
// that callers waiting for this process share the failure instead of each
// repeating it. msg is stored as given: the caller passes the one-line
// error it returns, which never holds a token.
func (c *cache) storeFailure(key, msg string, at time.Time) error {
	b, err := json.Marshal(failureMarker{Error: msg, At: at})
	if err != nil {
		return err
	}
	return c.writeAtomic(key, failSuffix, b)
}

// loadFailure returns the failure recorded for key if it was recorded
// after since (when the caller started waiting for the lock) and not after
// now: callers that waited for the failing exchange share its failure,
// callers arriving later try afresh, and a marker dated in the future
// (the clock went back) is ignored instead of failing every caller.
func (c *cache) loadFailure(key string, since, now time.Time) (string, bool) {
	b, err := c.readPrivate(key + failSuffix)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.logf("cache: ignoring failure marker %s: %v", key, err)
		}
		return "", false
	}
	var m failureMarker
	if err := json.Unmarshal(b, &m); err != nil || m.Error == "" {
		c.logf("cache: ignoring failure marker %s: corrupt", key)
		return "", false
	}
	if !m.At.After(since) || m.At.After(now) {
		return "", false
	}
	return m.Error, true
}

// writeAtomic writes b as key+suffix: a new temporary file in the folder
// (O_EXCL, so it never follows a link), synced, then renamed over the
// name (rename replaces a link rather than following it), so a reader
// sees the old file or the new one and never half of one.
func (c *cache) writeAtomic(key, suffix string, b []byte) error {
	var (
		f   *os.File
		tmp string
		err error
	)
	for range 3 {
		tmp = key + "." + fmt.Sprintf("%016x", rand.Uint64()) + tmpSuffix //nolint:gosec // G404: the name need only be unique; O_EXCL in our private folder settles a clash
		f, err = c.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = c.root.Rename(tmp, key+suffix)
	}
	if err != nil {
		_ = c.root.Remove(tmp)
	}
	return err
}

// removeOurs removes name if it is a regular file of ours; anything else
// is left alone.
func (c *cache) removeOurs(name string) bool {
	fi, err := c.root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() || !ownedByMe(fi) {
		return false
	}
	return c.root.Remove(name) == nil
}

// lockWait takes the cross-process lock for key, waiting at most maxWait
// (and not past ctx) while another process holds it; that process is
// exchanging, and its entry or failure marker is read after. On timeout the
// error wraps errLockWait. A lock file that is not a regular file of ours
// (a planted link, FIFO or foreign file) is an error at once: no lock, and
// the caller exchanges without the cache.
//
// ready, if not nil, is asked after each attempt that finds the lock held;
// when it reports true (the holder's entry is there) the error is
// errReady and no lock is taken. Without it, a fleet of waiters would take
// the lock one by one just to read that entry: 512 processes polling on 2
// cores took longer than their budget, and most then exchanged.
func (c *cache) lockWait(ctx context.Context, key string, maxWait time.Duration, ready func() bool) (unlock func(), err error) {
	name := key + lockSuffix
	timeout := time.NewTimer(maxWait)
	defer timeout.Stop()
	poll := lockPoll
	for {
		unlock, err = c.tryLock(name)
		if err != nil {
			return nil, fmt.Errorf("cache lock: %w", err)
		}
		if unlock != nil {
			return unlock, nil
		}
		if ready != nil && ready() {
			return nil, errReady
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout.C:
			return nil, fmt.Errorf("%w (waited %s)", errLockWait, maxWait)
		case <-time.After(poll/2 + rand.N(poll/2+1)): //nolint:gosec // G404: jitter, not a secret
		}
		poll = min(poll*3/2, lockPollMax)
	}
}

// lockBudget is how long a caller under ctx should wait for another
// process's exchange: half of the time left, so that a caller that gives
// up still has the other half for an exchange of its own.
func lockBudget(ctx context.Context) time.Duration {
	d, ok := ctx.Deadline()
	if !ok {
		return DefaultTimeout / 2
	}
	return time.Until(d) / 2
}

// openLockFile opens the lock file called name, creating it if missing.
// Creation uses O_EXCL, which never follows a link; an existing file must
// be a regular file of ours (see openPrivate).
func (c *cache) openLockFile(name string) (*os.File, fs.FileInfo, error) {
	f, err := c.root.OpenFile(name, os.O_RDONLY|os.O_CREATE|os.O_EXCL|noFollow|nonBlock, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return c.openPrivate(name, os.O_RDONLY)
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkPrivateFile(filepath.Join(c.dir, name), fi, fi)
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// stillLinked reports whether the locked file fi is still the one called
// name. A sweep may remove a lock file while a waiter has it open; that
// waiter's lock would then exclude no one, so it must try again.
func (c *cache) stillLinked(name string, fi fs.FileInfo) bool {
	now, err := c.root.Lstat(name)
	return err == nil && os.SameFile(fi, now)
}
