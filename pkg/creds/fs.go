package creds

import (
	"io/fs"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
)

// notRegularError says that a path the helper must read is not a plain file:
// a FIFO, socket, device, folder or (when links are refused) a symlink.
type notRegularError struct {
	path string
	mode fs.FileMode
}

func (e *notRegularError) Error() string {
	return logsafe.Quote(e.path, 256) + " is " + kindOf(e.mode) + ", not a regular file"
}

// kindOf names a file type for messages.
func kindOf(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0:
		return "a device"
	case t&fs.ModeDir != 0:
		return "a folder"
	case t == 0:
		return "a regular file"
	}
	return "a special file"
}
