//go:build e2ekubelet

package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/test/internal/child"
)

// proc is one process the test started, logging to its own file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startProc starts bin with args and a clean environment plus env, its
// output in logPath.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// The child holds its own descriptor; ours has nothing left to flush.
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = child.Attrs()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process by its PID: SIGTERM, then SIGKILL to its group if
// it lingers.
func (p *proc) stop(grace time.Duration) { child.Stop(p.cmd.Process.Pid, p.done, grace) }

// waitFor polls ok until it returns true, the process p exits (when p is
// not nil), or timeout passes.
func waitFor(what string, p *proc, timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (%v) while waiting for %s:\n%s", p.name, p.cmd.ProcessState, what, tail(p.log))
		}
		time.Sleep(200 * time.Millisecond)
	}
	msg := fmt.Sprintf("timed out after %s waiting for %s", timeout, what)
	if p != nil {
		msg += ":\n" + tail(p.log)
	}
	return errors.New(msg)
}

// freePorts finds n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for len(ports) < n {
		p, err := child.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

// httpOK reports whether GET url answers 200 with a body starting with want.
func httpOK(client *http.Client, url, want string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	n, _ := resp.Body.Read(buf)
	return resp.StatusCode == http.StatusOK && strings.HasPrefix(string(buf[:n]), want)
}

// tail is the end of a log file, redacted.
func tail(path string) string { return child.Tail(path, 6<<10) }

// grepLog returns the lines of path that contain every one of words,
// redacted.
func grepLog(path string, words ...string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }() // read only
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		all := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				all = false
				break
			}
		}
		if all {
			out = append(out, child.Redact(line))
		}
	}
	return out
}

// run runs a short command and returns its combined output.
func run(timeout time.Duration, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var done []string
	for _, mp := range slices.Compact(points) {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err == nil {
			done = append(done, mp)
		}
	}
	return done
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// fixedPaths are folders the kubelet and containerd use whatever their
// flags say. Those that did not exist before the test are removed after it.
var fixedPaths = []string{"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd"}

// absentFixedPaths lists which of fixedPaths do not exist now.
func absentFixedPaths() []string {
	var out []string
	for _, p := range fixedPaths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			out = append(out, p)
		}
	}
	return out
}

// removeCreated removes paths (made by the run), after unmounting anything
// below them.
func removeCreated(t *testing.T, paths []string) {
	for _, p := range paths {
		unmountUnder(p)
		if err := os.RemoveAll(p); err != nil {
			t.Logf("cleanup: removing %s: %v", p, err)
		}
	}
}

// pathWithin joins and checks a path stays short enough for a unix socket.
func sockPath(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if len(p) >= 100 {
		return "", fmt.Errorf("socket path %s is too long", p)
	}
	return p, nil
}
