//go:build unix

package main

import (
	"os"
	"syscall"
)

// pageFaults is how many page faults a finished process took, minor and
// major, from wait4's resource usage: an exec's faults are much of what a
// short process costs, and they differ between binaries that run the same
// instructions.
func pageFaults(ps *os.ProcessState) float64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Minflt + ru.Majflt)
	}
	return 0
}
