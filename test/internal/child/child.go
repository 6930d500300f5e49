//go:build linux

// Package child starts and stops the real components the suites run
// (dockerd, docker-registry, etcd, kube-apiserver, containerd, the kubelet)
// so that none outlives the test binary: test/e2e and test/cluster share it.
package child

import (
	"syscall"
	"time"
)

// Attrs makes a child the leader of its own process group, killed with
// SIGKILL if the test binary dies without cleaning up (a panic, go test's
// -timeout).
func Attrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// Stop sends SIGTERM to pid and waits for done; after grace it kills pid's
// whole process group (Attrs made pid its leader).
func Stop(pid int, done <-chan struct{}, grace time.Duration) {
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}
