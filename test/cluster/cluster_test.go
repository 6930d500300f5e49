//go:build e2ekubelet

package cluster

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	nodeName = "cgr-e2e-node"
	// clusterIssuer is the API server's service-account issuer: a name no
	// one can fetch, like a private cluster's, so the STS can trust it only
	// through the static keys (its JWKS) the identities hold.
	clusterIssuer = "https://kubernetes.cluster.e2e.invalid"
	// pauseImage is the sandbox image containerd is told to use; the test
	// imports a hand-made one under this name.
	pauseImage = "registry.k8s.io/pause:3.10"
)

// components are the programs the cluster is made of.
type components struct {
	etcd, apiserver, kubelet, containerd, ctr, registry string
	busybox                                             string // static, for the README pod's image
}

// cluster is a single-node cluster on loopback that the test started.
type cluster struct {
	t    *testing.T
	dir  string
	bins components

	apiURL     string
	admin      *api
	nodeToken  string
	caFile     string
	kubeconfig string

	etcd, apiserver, containerd *proc
	apiDir, etcdURL             string
	apiPort                     int
	saKeys                      []string // the service-account key pairs in apiDir (NAME.key, NAME.pub), the last signs
	containerdSock              string
	containerdDir               string

	kubelet       *proc
	kubeletStarts int
	kubeletDir    string
	kubeletLog    string
	healthzPort   int
	kubeletPort   int
	homeDir       string // the kubelet's (and so the plugin's) empty HOME
}

// startControlPlane starts etcd and kube-apiserver and waits until the API
// server is ready. Everything listens on 127.0.0.1 only.
func startControlPlane(t *testing.T, dir string, bins components) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: dir, bins: bins}
	ports := freePorts(t, 5)
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	c.healthzPort, c.kubeletPort = ports[3], ports[4]

	etcdDir := filepath.Join(dir, "etcd")
	must(t, os.MkdirAll(etcdDir, 0o700))
	clientURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	var err error
	c.etcd, err = startProc("etcd", filepath.Join(dir, "etcd.log"), nil, bins.etcd,
		"--name=e2e", "--data-dir="+filepath.Join(etcdDir, "data"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL, "--initial-cluster-state=new")
	must(t, err)
	t.Cleanup(func() { c.etcd.stop(10 * time.Second) })
	plain := &http.Client{Timeout: 2 * time.Second}
	must(t, waitFor("etcd to be healthy", c.etcd, 30*time.Second, func() bool {
		return httpOK(plain, clientURL+"/health", `{"health":"true"`)
	}))

	p, err := newPKI()
	must(t, err)
	apiDir := filepath.Join(dir, "apiserver")
	must(t, os.MkdirAll(apiDir, 0o700))
	c.caFile = filepath.Join(apiDir, "ca.crt")
	must(t, os.WriteFile(c.caFile, p.caPEM, 0o600))
	must(t, os.WriteFile(filepath.Join(apiDir, "tls.crt"), p.certPEM, 0o600))
	must(t, os.WriteFile(filepath.Join(apiDir, "tls.key"), p.keyPEM, 0o600))
	must(t, serviceAccountKeys(filepath.Join(apiDir, "sa.key"), filepath.Join(apiDir, "sa.pub")))
	adminToken := secret()
	c.nodeToken = secret()
	// Token-file authentication: an admin in system:masters, and the node
	// as system:node:NAME in system:nodes, which the Node authorizer and
	// the NodeRestriction admission plugin recognise.
	tokens := fmt.Sprintf("%s,admin,admin-uid,\"system:masters\"\n%s,system:node:%s,node-uid,\"system:nodes\"\n", adminToken, c.nodeToken, nodeName)
	must(t, os.WriteFile(filepath.Join(apiDir, "tokens.csv"), []byte(tokens), 0o600))

	c.apiURL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.apiDir = apiDir
	c.admin = newAPI(c.apiURL, adminToken, p.pool)
	c.saKeys = []string{"sa"}
	c.startAPIServer(t, clientURL, apiPort)
	t.Cleanup(func() { c.apiserver.stop(15 * time.Second) })

	c.kubeconfig = filepath.Join(dir, "kubelet.kubeconfig")
	must(t, os.WriteFile(c.kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: node
  user:
    token: %s
contexts:
- name: e2e
  context:
    cluster: e2e
    user: node
current-context: e2e
`, c.apiURL, c.caFile, c.nodeToken)), 0o600))
	return c
}

// startAPIServer starts kube-apiserver, signing service-account tokens
// with the last of c.saKeys and accepting all of them, as during a real key
// rotation, and waits until it is ready.
func (c *cluster) startAPIServer(t *testing.T, etcdURL string, port int) {
	t.Helper()
	c.etcdURL, c.apiPort = etcdURL, port
	apiDir := c.apiDir
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + filepath.Join(apiDir, "tls.crt"), "--tls-private-key-file=" + filepath.Join(apiDir, "tls.key"),
		"--cert-dir=" + filepath.Join(apiDir, "certs"),
		"--token-auth-file=" + filepath.Join(apiDir, "tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=" + clusterIssuer,
		"--service-account-signing-key-file=" + filepath.Join(apiDir, c.saKeys[len(c.saKeys)-1]+".key"),
		"--api-audiences=" + clusterIssuer,
		"--service-cluster-ip-range=10.96.0.0/24",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--v=1",
	}
	for _, k := range c.saKeys {
		args = append(args, "--service-account-key-file="+filepath.Join(apiDir, k+".pub"))
	}
	var err error
	c.apiserver, err = startProc("kube-apiserver", filepath.Join(c.dir, "kube-apiserver.log"), nil, c.bins.apiserver, args...)
	must(t, err)
	must(t, waitFor("kube-apiserver to be ready", c.apiserver, 90*time.Second, func() bool {
		var b []byte
		return c.admin.get("/readyz", &b) == nil && string(b) == "ok"
	}))
}

// rotateServiceAccountKey restarts the API server with a new signing key;
// the old one stays among the verification keys, so tokens already issued
// remain valid, and /openid/v1/jwks serves both.
func (c *cluster) rotateServiceAccountKey(t *testing.T) {
	t.Helper()
	name := fmt.Sprintf("sa%d", len(c.saKeys)+1)
	must(t, serviceAccountKeys(filepath.Join(c.apiDir, name+".key"), filepath.Join(c.apiDir, name+".pub")))
	c.saKeys = append(c.saKeys, name)
	c.apiserver.stop(15 * time.Second)
	c.startAPIServer(t, c.etcdURL, c.apiPort)
}

// startContainerd starts containerd with its own root, state and socket
// (never the machine's, nor the one dockerd runs), the native snapshotter,
// restrict_oom_score_adj (runc cannot set oom_score_adj in this sandbox),
// a hosts.toml that reaches the plain-HTTP loopback registry, and imports
// the hand-made pause image.
func (c *cluster) startContainerd(registryHost string, pause []byte) {
	t := c.t
	t.Helper()
	d := filepath.Join(c.dir, "c")
	c.containerdDir = d
	for _, sub := range []string{"root", "state", "opt", "runc", "cni/bin", "cni/conf", "certs.d/" + registryHost} {
		must(t, os.MkdirAll(filepath.Join(d, sub), 0o700))
	}
	var err error
	c.containerdSock, err = sockPath(d, "containerd.sock")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(d, "certs.d", registryHost, "hosts.toml"), []byte(fmt.Sprintf(`server = "http://%[1]s"

[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
`, registryHost)), 0o600))
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = %[3]q

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %[4]q
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = %[5]q
    restrict_oom_score_adj = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "native"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = %[6]q
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = %[7]q
      conf_dir = %[8]q
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = %[9]q
`, filepath.Join(d, "root"), filepath.Join(d, "state"), c.containerdSock, filepath.Join(d, "opt"), pauseImage,
		filepath.Join(d, "runc"), filepath.Join(d, "cni/bin"), filepath.Join(d, "cni/conf"), filepath.Join(d, "certs.d"))
	cfgFile := filepath.Join(d, "config.toml")
	must(t, os.WriteFile(cfgFile, []byte(cfg), 0o600))
	c.containerd, err = startProc("containerd", filepath.Join(c.dir, "containerd.log"), nil, c.bins.containerd, "--config", cfgFile)
	must(t, err)
	t.Cleanup(c.stopContainerd)
	// The kubelet, whichever case started it last, stops before
	// containerd; on failure, the logs' ends are shown first.
	t.Cleanup(func() {
		if t.Failed() {
			for _, log := range []string{c.kubeletLog, c.containerd.log, c.apiserver.log} {
				if log != "" {
					t.Logf("end of %s:\n%s", filepath.Base(log), tail(log))
				}
			}
		}
		c.stopKubelet()
	})
	must(t, waitFor("containerd to answer", c.containerd, 30*time.Second, func() bool {
		_, err := c.ctr(10*time.Second, "version")
		return err == nil
	}))

	archive := filepath.Join(c.dir, "pause.tar")
	writePauseArchive(t, archive, pauseImage, pause)
	c.importImage(t, archive)
}

func (c *cluster) ctr(timeout time.Duration, args ...string) (string, error) {
	return run(timeout, c.bins.ctr, append([]string{"--address", c.containerdSock}, args...)...)
}

// stopContainerd removes the pods' tasks first (or their shims and pause
// processes outlive containerd), stops containerd by PID, then unmounts
// the sandboxes' shm and the containers' rootfs mounts under its folders.
func (c *cluster) stopContainerd() {
	if c.containerd == nil {
		return
	}
	if !c.containerd.exited() {
		list := func() []string {
			out, err := c.ctr(30*time.Second, "-n", "k8s.io", "tasks", "ls", "-q")
			if err != nil {
				c.t.Logf("cleanup: ctr tasks ls: %v %s", err, strings.TrimSpace(out))
				return nil
			}
			return strings.Fields(out)
		}
		for _, id := range list() {
			// A task the kubelet is stopping meanwhile may go away under
			// us; what is still listed afterwards is what failed.
			_, _ = c.ctr(30*time.Second, "-n", "k8s.io", "tasks", "rm", "-f", id)
		}
		if left := list(); len(left) > 0 {
			c.t.Logf("cleanup: containerd still lists tasks %v after ctr tasks rm -f", left)
		}
	}
	c.containerd.stop(20 * time.Second)
	// A shim whose start raced with the shutdown outlives containerd, and
	// so may a container whose shim died: find them by what is ours alone,
	// the socket path and runc root under this run's folder.
	if runc, err := exec.LookPath("runc"); err == nil {
		root := filepath.Join(c.containerdDir, "runc", "k8s.io")
		ids, _ := os.ReadDir(root)
		for _, id := range ids {
			if out, err := run(30*time.Second, runc, "--root", root, "delete", "--force", id.Name()); err != nil {
				c.t.Logf("cleanup: runc delete --force %s: %v %s", id.Name(), err, strings.TrimSpace(out))
			}
		}
	}
	for _, pid := range shimsOf(c.containerdSock) {
		c.t.Logf("cleanup: stopping leftover containerd-shim-runc-v2 %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if m := unmountUnder(c.containerdDir); len(m) > 0 {
		c.t.Logf("cleanup: unmounted %d mounts under containerd's folders", len(m))
	}
}

// shimsOf lists the PIDs of containerd-shim-runc-v2 processes started for
// the containerd at sock (their command line names it after -address).
func shimsOf(sock string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "containerd-shim-runc-v2" {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && (args[i+1] == sock || args[i+1] == "unix://"+sock) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// startKubelet (re)starts the kubelet, with a credential provider config
// and its plugin folder when providerConfig is not empty, and waits until
// it is healthy and its node is registered.
func (c *cluster) startKubelet(t *testing.T, providerConfig, pluginDir string) {
	t.Helper()
	if c.kubelet != nil {
		c.stopKubelet()
	}
	c.kubeletStarts++
	c.kubeletDir = filepath.Join(c.dir, "k")
	c.homeDir = filepath.Join(c.dir, "home")
	for _, sub := range []string{"root", "certs", "pod-logs"} {
		must(t, os.MkdirAll(filepath.Join(c.kubeletDir, sub), 0o700))
	}
	must(t, os.MkdirAll(c.homeDir, 0o700))
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://%s
podLogsDir: %s
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
rotateCertificates: false
`, c.kubeletPort, c.healthzPort, c.containerdSock, filepath.Join(c.kubeletDir, "pod-logs"))
	cfgFile := filepath.Join(c.kubeletDir, "config.yaml")
	must(t, os.WriteFile(cfgFile, []byte(cfg), 0o600))
	args := []string{
		"--config=" + cfgFile,
		"--kubeconfig=" + c.kubeconfig,
		"--root-dir=" + filepath.Join(c.kubeletDir, "root"),
		"--cert-dir=" + filepath.Join(c.kubeletDir, "certs"),
		"--hostname-override=" + nodeName,
		"--node-ip=127.0.0.1",
		"--v=2",
	}
	if providerConfig != "" {
		args = append(args, "--image-credential-provider-config="+providerConfig, "--image-credential-provider-bin-dir="+pluginDir)
	}
	c.kubeletLog = filepath.Join(c.dir, fmt.Sprintf("kubelet-%d.log", c.kubeletStarts))
	var err error
	// HOME is an empty folder: the plugin inherits the kubelet's
	// environment, and must see only what the provider config gives it.
	c.kubelet, err = startProc("kubelet", c.kubeletLog, []string{"HOME=" + c.homeDir}, c.bins.kubelet, args...)
	must(t, err)
	healthz := fmt.Sprintf("http://127.0.0.1:%d/healthz", c.healthzPort)
	plain := &http.Client{Timeout: 2 * time.Second}
	must(t, waitFor("the kubelet to be healthy", c.kubelet, 90*time.Second, func() bool {
		return httpOK(plain, healthz, "ok")
	}))
	must(t, waitFor("the node to be registered", c.kubelet, 60*time.Second, func() bool {
		return c.admin.get("/api/v1/nodes/"+nodeName, nil) == nil
	}))
}

// stopKubelet stops the kubelet by PID and unmounts what it mounted under
// its root folder.
func (c *cluster) stopKubelet() {
	if c.kubelet == nil {
		return
	}
	c.kubelet.stop(20 * time.Second)
	c.kubelet = nil
	if m := unmountUnder(filepath.Join(c.kubeletDir, "root")); len(m) > 0 {
		c.t.Logf("cleanup: unmounted %d mounts under the kubelet's root", len(m))
	}
}

// lookupComponents finds every program; a missing one skips the test with
// what to install, or fails it in CI.
func lookupComponents(t *testing.T) components {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "the cluster test must run as root: it starts containerd and the kubelet")
	}
	kubeDir := os.Getenv("CGR_KUBE_BIN")
	var missing []string
	find := func(prog, install string) string {
		if kubeDir != "" && (prog == "kube-apiserver" || prog == "kubelet") {
			p := filepath.Join(kubeDir, prog)
			if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
				return p
			}
			missing = append(missing, fmt.Sprintf("%s (not in CGR_KUBE_BIN=%s; %s)", prog, kubeDir, install))
			return ""
		}
		p, err := exec.LookPath(prog)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", prog, install))
		}
		return p
	}
	b := components{
		etcd:       find("etcd", "Debian package etcd-server"),
		containerd: find("containerd", "Debian package containerd"),
		ctr:        find("ctr", "Debian package containerd"),
		registry:   find("docker-registry", "Debian package docker-registry"),
		apiserver:  find("kube-apiserver", "test/cluster/install.sh builds it"),
		kubelet:    find("kubelet", "test/cluster/install.sh builds it"),
		busybox:    find("busybox", "Debian package busybox-static"),
	}
	find("runc", "Debian package runc")
	find("containerd-shim-runc-v2", "Debian package containerd")
	if len(missing) > 0 {
		skipOrFail(t, "missing: "+strings.Join(missing, "; ")+" (make e2e-kubelet runs test/cluster/install.sh, which installs them all)")
	}
	return b
}

func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
