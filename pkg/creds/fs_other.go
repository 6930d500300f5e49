//go:build !unix

package creds

import (
	"fmt"
	"io/fs"
	"os"
)

// ownedByMe cannot be answered from FileInfo here; the folder's ACLs, which
// the user profile sets, are what keeps other users out.
func ownedByMe(fs.FileInfo) bool { return true }

// checkTrusted has no owner or mode bits to check here; the user profile's
// ACLs protect the config folder.
func checkTrusted(string, fs.FileInfo) error { return nil }

// ownerID cannot be told from FileInfo here.
func ownerID(fs.FileInfo) int { return -1 }

const noFollow = 0

const nonBlock = 0

// openRegular opens path for reading only if it is a regular file (see the
// unix version). Without O_NOFOLLOW the symlink check is a Lstat before the
// open, which a racing writer could beat; the folders involved are the
// user's own.
func openRegular(path string, follow bool) (*os.File, fs.FileInfo, error) {
	stat := os.Stat
	if !follow {
		stat = os.Lstat
	}
	before, err := stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, nil, &notRegularError{path: path, mode: before.Mode()}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || !os.SameFile(before, fi)) {
		err = fmt.Errorf("%s changed while it was being opened", path)
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}
