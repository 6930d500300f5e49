package creds

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// notRegularError says that a path the helper must read is not a plain file:
// a FIFO, socket, device, folder or (when links are refused) a symlink.
type notRegularError struct {
	path string
	mode fs.FileMode
}

func (e *notRegularError) Error() string {
	return logsafe.Quote(e.path, pathLimit) + " is " + logsafe.FileKind(e.mode) + ", not a regular file"
}

// openRegular opens path for reading only if it is a regular file. It never
// blocks: the path is checked with stat before the open (opening some
// devices has side effects, even read-only, and the helper runs as root),
// opened non-blocking, and checked again on the open descriptor, which must
// be the file that was stat-ed. With follow false a symlink is refused
// (where O_NOFOLLOW is missing, by the Lstat alone, which a racing writer
// could beat; the folders involved are then the user's own). The error
// names path and what was found there.
func openRegular(path string, follow bool) (*os.File, fs.FileInfo, error) {
	stat, flags := os.Stat, os.O_RDONLY|nonBlock|openFlags
	if !follow {
		stat, flags = os.Lstat, flags|noFollow
	}
	before, err := stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, nil, &notRegularError{path: path, mode: before.Mode()}
	}
	f, err := openAt(atCWD, path, flags, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || !os.SameFile(before, fi)) {
		err = fmt.Errorf("%s changed while it was being opened", logsafe.Quote(path, pathLimit))
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// readSized is io.ReadAll(io.LimitReader(f, limit)) for a regular file
// whose size fstat gave. With room for the whole file and one byte more
// from the start, a small file takes one allocation and two reads (the
// second finds the end) instead of a doubling series (four reads for a
// 1 KiB token). The buffer is the file's size, not size+512 as
// bytes.Buffer would make it: a smaller size class, which measured about
// 0.3% of a cached get and two page faults fewer (docs/benchmarks.md). A
// file that grew since is still read to its end or the limit.
func readSized(f io.Reader, size, limit int64) ([]byte, error) {
	limit = max(limit, 0) // as io.LimitReader: nothing to read
	b := make([]byte, 0, min(max(size, 0), limit)+1)
	for int64(len(b)) < limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow as append does
		}
		n, err := f.Read(b[len(b):min(int64(cap(b)), limit)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}
