//go:build !unix

package creds

import "io/fs"

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
