//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/test/internal/child"
	"github.com/cgr-helper/docker-credential-cgr/test/internal/distribution"
)

// registryProc is a running docker-registry.
type registryProc struct {
	addr string // 127.0.0.1:PORT
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startRegistry starts Debian's docker-registry (CNCF distribution) on a
// free loopback port, serving storage, with token auth when auth is set and
// without any auth otherwise. It retries on a new port if it loses the race
// for one.
func startRegistry(bin, dir, storage string, auth *distribution.TokenAuth) (*registryProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r, err := tryStartRegistry(bin, dir, storage, auth)
		if err == nil {
			return r, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryStartRegistry(bin, dir, storage string, auth *distribution.TokenAuth) (*registryProc, error) {
	port, err := child.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(distribution.Config(storage, addr, auth)), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	// The child holds its own descriptor; ours has nothing left to flush.
	defer func() { _ = logFile.Close() }()

	cmd := exec.Command(bin, "serve", cfgFile)
	// A clean environment: REGISTRY_* variables would override the file.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = child.Attrs()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &registryProc{addr: addr, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.done) }()

	if err := r.waitReady(distribution.ReadyStatus(auth)); err != nil {
		return nil, err
	}
	return r, nil
}

// waitReady polls /v2/ until it answers with want, for up to 30s. It stops
// the registry when it answers anything else or not at all.
func (r *registryProc) waitReady(want int) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return fmt.Errorf("docker-registry exited at start:\n%s", tail(filepath.Join(r.dir, "registry.log")))
		default:
		}
		resp, err := client.Get("http://" + r.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			r.stop()
			return fmt.Errorf("docker-registry answered /v2/ with %s, want %d", resp.Status, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.stop()
	return fmt.Errorf("docker-registry did not answer on %s within 30s:\n%s", r.addr, tail(filepath.Join(r.dir, "registry.log")))
}

// stop ends the registry: SIGTERM, then SIGKILL if it lingers.
func (r *registryProc) stop() { child.Stop(r.cmd.Process.Pid, r.done, 10*time.Second) }

// dockerd is a Docker daemon the suite started itself, isolated from any
// system daemon: its own data root, exec root, socket, pidfile and config.
type dockerd struct {
	dir     string
	sock    string
	pidfile string
	log     string
	cmd     *exec.Cmd
	done    chan struct{}
}

// host is the DOCKER_HOST value for this daemon.
func (d *dockerd) host() string { return "unix://" + d.sock }

// startDockerd starts dockerd with the vfs storage driver (it needs no
// kernel overlay support and no mounts), no bridge and no iptables rules,
// so it changes nothing on the machine's network. registry is marked
// insecure explicitly; docker also treats all of 127.0.0.0/8 as insecure by
// default.
func startDockerd(bin, registry string) (*dockerd, error) {
	// Short: unix socket paths, including containerd's under the exec
	// root, must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "cgr-dockerd-")
	if err != nil {
		return nil, err
	}
	d := &dockerd{
		dir:     dir,
		sock:    filepath.Join(dir, "docker.sock"),
		pidfile: filepath.Join(dir, "docker.pid"),
		log:     filepath.Join(dir, "dockerd.log"),
		done:    make(chan struct{}),
	}
	if err := d.start(bin, registry); err != nil {
		return nil, err
	}
	if err := d.waitReady(); err != nil {
		return nil, err
	}
	return d, nil
}

// start writes an empty daemon.json and starts dockerd on d's folders,
// with registry marked insecure.
func (d *dockerd) start(bin, registry string) error {
	cfg := filepath.Join(d.dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o600); err != nil {
		return err
	}
	logFile, err := os.Create(d.log)
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }() // as in startRegistry
	d.cmd = exec.Command(bin,
		"--config-file="+cfg,
		"--storage-driver=vfs",
		"--data-root="+filepath.Join(d.dir, "data"),
		"--exec-root="+filepath.Join(d.dir, "exec"),
		"--host=unix://"+d.sock,
		"--pidfile="+d.pidfile,
		"--iptables=false",
		"--ip-masq=false",
		"--bridge=none",
		"--insecure-registry="+registry,
	)
	d.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.dir}
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	d.cmd.SysProcAttr = child.Attrs()
	if err := d.cmd.Start(); err != nil {
		removeAll(d.dir)
		return err
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	return nil
}

// waitReady pings dockerd on its socket until it answers OK, for up to
// 60s. If dockerd exits or never answers, its folder is removed.
func (d *dockerd) waitReady() error {
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
		}},
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			err := fmt.Errorf("dockerd exited at start (%v):\n%s", d.cmd.ProcessState, tail(d.log))
			removeAll(d.dir)
			return err
		default:
		}
		resp, err := client.Get("http://docker/_ping")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Equal(body, []byte("OK")) {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	err := fmt.Errorf("dockerd did not answer on %s within 60s:\n%s", d.sock, tail(d.log))
	d.stop()
	return err
}

// stop ends dockerd by the PID in its pidfile (it stops its own
// containerd), then removes its folders.
func (d *dockerd) stop() {
	// The pidfile names the daemon; it must be the process we started, so
	// that nothing else is ever signalled.
	pid := d.cmd.Process.Pid
	if b, err := os.ReadFile(d.pidfile); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p != pid {
			fmt.Fprintf(os.Stderr, "dockerd's pidfile names %d, not our child %d; stopping %d\n", p, pid, pid)
		}
	}
	child.Stop(pid, d.done, 30*time.Second)
	// dockerd bind-mounts its data root onto itself and undoes that when
	// it shuts down cleanly; if it was killed, the mount is still there.
	_ = syscall.Unmount(filepath.Join(d.dir, "data"), syscall.MNT_DETACH)
	if err := os.RemoveAll(d.dir); err != nil {
		fmt.Fprintln(os.Stderr, "removing dockerd's folder:", err)
	}
}

// tail is the end of a log file, with anything token-like redacted.
func tail(path string) string { return child.Tail(path, 4<<10) }
