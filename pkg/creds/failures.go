package creds

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// The failure record (docs/reference.md#failure-record). docker throws a
// helper's error away and shows only "unauthorized", and the kubelet's log
// is on the node, so every failed get or kubelet call appends one JSON line
// to failures.log in the cache folder, where doctor reads it. The folder's
// rules are the cache's (ours, private, every open relative to the checked
// folder), so no other user can read the record or redirect a write; with
// the cache off there is no record.
const (
	failureLog = "failures.log"
	// failureLogOld is the previous record: when failures.log would pass
	// maxFailureLog it is renamed to this, replacing the older one, so the
	// record never holds more than twice maxFailureLog.
	failureLogOld = failureLog + ".1"
	maxFailureLog = 32 << 10
	// maxFailureMessage caps one recorded message, in runes.
	maxFailureMessage = 1000
)

// Failure is one failed call, as recorded.
type Failure struct {
	Time time.Time `json:"time"`
	// Command is "get" (docker's protocol, or Get in-process) or "kubelet".
	Command string `json:"command"`
	// Registry is the registry host the call was for.
	Registry string `json:"registry"`
	// Class names the error class (ErrIdentityRejected, ...), or is
	// "unclassified" for an error outside them.
	Class string `json:"class"`
	// Message is the error's one-line message, which never holds a token.
	Message string `json:"message"`
}

// className is the recorded name of err's class.
func className(err error) string {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "unclassified"
}

// failureFor is the record of err, a failure of command for registry.
func failureFor(command, registry string, err error, now time.Time) Failure {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	// Messages are built without tokens and redacted against the ambient
	// token; the record scrubs once more when it writes a line, since the
	// line outlives the call, and again when it reads one, since the file
	// may have been edited.
	msg = logsafe.RedactJWTs(msg)
	if utf8.RuneCountInString(msg) > maxFailureMessage {
		msg = string([]rune(msg)[:maxFailureMessage]) + "…"
	}
	return Failure{Time: now.UTC(), Command: command, Registry: registry, Class: className(err), Message: msg}
}

// recordFailure records err for command and registry. A record that
// cannot be written is logged, never a second failure.
func (h *Helper) recordFailure(command, registry string, err error) {
	c := h.openCache()
	defer func() { _ = c.close() }()
	if rerr := c.appendFailure(failureFor(command, registry, err, h.now())); rerr != nil {
		h.logf("cache: cannot record the failure in %s: %v", failureLog, rerr)
	}
}

// appendFailure appends f to failures.log, first moving a full log to
// failures.log.1. One write of one short line with O_APPEND: concurrent
// processes' lines do not interleave. Two processes rotating at once may
// leave a line in the older file; nothing is lost but order.
func (c *cache) appendFailure(f Failure) error {
	line, err := json.Marshal(f)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if fi, err := c.root.Lstat(failureLog); err == nil && fi.Size()+int64(len(line)) > maxFailureLog {
		// Rename replaces whatever is at the old name, link or file,
		// without following it.
		if err := c.root.Rename(failureLog, failureLogOld); err != nil {
			return err
		}
	}
	file, err := c.openAppend(failureLog)
	if err != nil {
		return err
	}
	_, err = file.Write(line)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	return err
}

// openAppend opens the file called name for appending: an existing one
// only as openPrivate accepts it (so a link, even to another file of the
// folder, is refused), a new one with O_EXCL (which never follows a link).
func (c *cache) openAppend(name string) (*os.File, error) {
	const flag = os.O_WRONLY | os.O_APPEND
	f, _, err := c.openPrivate(name, flag)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = c.root.OpenFile(name, flag|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) { // another process made it first
			f, _, err = c.openPrivate(name, flag)
		}
	}
	return f, err
}

// recentFailures returns the last n recorded failures, oldest first. A
// line that does not parse is skipped: the record is advice, not state.
func (c *cache) recentFailures(n int) ([]Failure, error) {
	var all []Failure
	for _, name := range []string{failureLogOld, failureLog} {
		f, fi, err := c.openPrivate(name, os.O_RDONLY)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(f, min(fi.Size(), 2*maxFailureLog)))
		_ = f.Close()
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 0, 4096), maxFailureLog)
		for sc.Scan() {
			var rec Failure
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Message != "" {
				rec.Message = logsafe.RedactJWTs(rec.Message)
				all = append(all, rec)
			}
		}
	}
	return all[max(0, len(all)-n):], nil
}

// RecentFailures returns the path of the failure record and its last n
// failures, oldest first, each message scrubbed of anything JWT-shaped. With the cache off there is no record: path is
// empty and there is no error. Opening the record may create the cache
// folder, as any call of the helper would.
func RecentFailures(cfg Config, n int) (path string, failures []Failure, err error) {
	if cfg.NoCache || cfg.CacheDir == "" {
		return "", nil, nil
	}
	c, err := openCache(cfg.CacheDir, func(string, ...any) {})
	if err != nil {
		return "", nil, err
	}
	defer func() { _ = c.close() }()
	failures, err = c.recentFailures(n)
	return filepath.Join(c.dir, failureLog), failures, err
}
