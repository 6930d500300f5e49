//go:build !unix

package creds

import (
	"errors"
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

// cacheSupported is false: with no owner or mode bits to check, a cache
// folder cannot be proved private, and a cache that may be shared is worse
// than none (docs/reference.md#platforms).
const cacheSupported = false

const noFollow = 0

const nonBlock = 0

const openFlags = 0

// atCWD is the only folder openAt is given here: the cache, which needs
// folder descriptors, is off.
const atCWD = -1

// openAt opens the path name (dir is always atCWD here).
func openAt(_ int, name string, flag int, perm uint32) (*os.File, error) {
	return os.OpenFile(name, flag, fs.FileMode(perm)) //nolint:gosec // G304: the caller checked the path, as on unix
}

// openDirAgain is never called here: the cache is off.
func openDirAgain(int, string, string, fs.FileInfo) (int, error) {
	return -1, errors.New("the token cache is off on this platform")
}

func closeDir(int) error { return nil }
