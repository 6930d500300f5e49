package dockerconfig

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// pathLimit caps a path shown in a message.
const pathLimit = 256

// maxFileSize caps a config file read: a docker config with many auths
// entries is a few KiB.
const maxFileSize = 4 << 20

func quote(path string) string { return logsafe.Quote(path, pathLimit) }

// linkError says that a config file is a symbolic link, which is never
// written through: replacing the link would break whatever manages it (a
// dotfiles manager), and following it would let whoever made the link
// choose the file that is rewritten, by root too.
type linkError struct{ path, target string }

func (e *linkError) Error() string {
	return fmt.Sprintf("%s is a symbolic link to %s, and configure-docker does not write through links", quote(e.path), quote(e.target))
}

// fileEdit is one config file's change.
type fileEdit struct {
	path          string
	before, after []byte // before is nil when there was no file
	created       bool
}

func (e fileEdit) changed() bool { return e.created || string(e.before) != string(e.after) }

// editFile applies edit to the file at path and, unless dryRun or nothing
// changed, replaces the file atomically: a temporary file in the same
// folder, synced, renamed over it. A new file gets newMode and its folder
// 0700; an existing one keeps its mode (keepMode) or gets newMode. Every
// step works inside the folder opened once (os.Root), so a folder swapped
// for a link midway cannot redirect the write. The folder must belong to
// this user or root and not be writable by others; the file, if there, must
// be a regular file of this user or root. A file that changes between the
// read and the rename is left alone. Nothing is changed on any error.
func editFile(path string, newMode fs.FileMode, keepMode, dryRun bool, edit func([]byte) ([]byte, error)) (fileEdit, error) {
	e := fileEdit{path: path}
	dir, name := filepath.Dir(path), filepath.Base(path)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return e, fmt.Errorf("%s is not a folder, so %s cannot be in it", quote(dir), quote(name))
	} else if errors.Is(err, fs.ErrNotExist) {
		if dryRun {
			e.created = true
			e.after, err = edit(nil)
			return e, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return e, fmt.Errorf("cannot create the folder %s: %w", quote(dir), unwrapPath(err))
		}
	} else if err != nil {
		return e, fmt.Errorf("cannot use the folder %s: %w", quote(dir), unwrapPath(err))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return e, fmt.Errorf("cannot open the folder %s: %w", quote(dir), unwrapPath(err))
	}
	defer func() { _ = root.Close() }() // a folder handle: nothing to lose
	if err := checkFolder(root, dir); err != nil {
		return e, err
	}
	was, err := readFile(root, path, name)
	if err != nil {
		return e, err
	}
	var mode fs.FileMode
	if was.info == nil {
		e.created, mode = true, newMode
	} else {
		e.before = was.data
		mode = newMode
		if keepMode {
			mode = was.info.Mode().Perm()
		}
	}
	if e.after, err = edit(e.before); err != nil || !e.changed() || dryRun {
		return e, err
	}
	return e, writeFile(root, dir, name, e.after, mode, was.info)
}

// contents is a file as read: its bytes and what it was (nil info: absent).
type contents struct {
	data []byte
	info fs.FileInfo
}

// readFile reads name from root without following a link and without
// blocking on a FIFO or device planted there: it is checked with Lstat,
// opened with no-follow and non-blocking flags, and must then be the same
// regular file.
func readFile(root *os.Root, path, name string) (contents, error) {
	before, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return contents{}, nil
	}
	if err != nil {
		return contents{}, fmt.Errorf("cannot read %s: %w", quote(path), unwrapPath(err))
	}
	if before.Mode()&fs.ModeSymlink != 0 {
		target, _ := root.Readlink(name)
		return contents{}, &linkError{path: path, target: target}
	}
	if !before.Mode().IsRegular() {
		return contents{}, fmt.Errorf("%s is %s, not a regular file; move it away", quote(path), logsafe.FileKind(before.Mode()))
	}
	if err := checkOwner(path, before); err != nil {
		return contents{}, err
	}
	f, err := root.OpenFile(name, os.O_RDONLY|readFlags, 0)
	if err != nil {
		return contents{}, fmt.Errorf("cannot read %s: %w", quote(path), unwrapPath(err))
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || !os.SameFile(before, fi) {
		return contents{}, fmt.Errorf("%s changed while it was being opened; run again", quote(path))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return contents{}, fmt.Errorf("cannot read %s: %w", quote(path), unwrapPath(err))
	}
	if len(data) > maxFileSize {
		return contents{}, fmt.Errorf("%s is larger than %d bytes, too large for a config file; check what it is", quote(path), maxFileSize)
	}
	return contents{data: data, info: fi}, nil
}

// writeFile replaces name in root with data, atomically. was is the file
// that was read (nil: there was none); if what is there now is not that
// file, unchanged, nothing is replaced.
func writeFile(root *os.Root, dir, name string, data []byte, mode fs.FileMode, was fs.FileInfo) (err error) {
	path := filepath.Join(dir, name)
	tmp := "." + name + ".tmp-" + rand.Text()
	// O_EXCL: a link planted at the temporary name is refused, not followed.
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|writeFlags, 0o600)
	if err != nil {
		return fmt.Errorf("cannot write in the folder %s: %w; %s was not changed", quote(dir), unwrapPath(err), quote(path))
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = root.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		return fmt.Errorf("cannot write in the folder %s: %w; %s was not changed", quote(dir), unwrapPath(err), quote(path))
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("cannot write in the folder %s: %w; %s was not changed", quote(dir), unwrapPath(err), quote(path))
	}
	now, statErr := root.Lstat(name)
	switch {
	case was == nil && statErr == nil:
		err = fmt.Errorf("%s appeared while configure-docker ran, so nothing was written: run again", quote(path))
	case was != nil && (statErr != nil || !os.SameFile(was, now) || !now.ModTime().Equal(was.ModTime()) || now.Size() != was.Size()):
		err = fmt.Errorf("%s changed while configure-docker ran, so nothing was written: run again", quote(path))
	}
	if err != nil {
		return err
	}
	if err = root.Rename(tmp, name); err != nil {
		return fmt.Errorf("cannot replace %s: %w; it was not changed", quote(path), unwrapPath(err))
	}
	// Make the rename itself durable. Some platforms cannot sync a
	// folder; the file is already in place, so that is not an error.
	if d, err := root.Open("."); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// unwrapPath drops *fs.PathError's operation and path, which the messages
// here already name, keeping the reason ("permission denied").
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
