//go:build e2ekubelet

package cluster

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	// podImage is the README pod's image, imported into containerd.
	podImage = "e2e.local/cgr-readme-pod:v1"
	// modulePath is this repository's module, which the README's second
	// go install line names.
	modulePath = "github.com/cgr-helper/docker-credential-cgr"
)

// installLikeREADME runs the README pod's `go install` lines on the node,
// as the pod would, into a fresh GOBIN, and returns it. Every module comes
// from the module proxy, as in a pod that can reach the internet, except
// this repository's: it is not published there, so a file-based proxy in
// front serves this checkout under a version named for its content. The
// binaries are static (CGO_ENABLED=0): the test image has no C library.
func installLikeREADME(t *testing.T, dir string, installs []string) string {
	t.Helper()
	gobin := filepath.Join(dir, "gobin")
	must(t, os.MkdirAll(gobin, 0o755))
	proxy := filepath.Join(dir, "goproxy")
	version := serveModule(t, proxy, filepath.Join("..", ".."))
	upstream, err := exec.Command("go", "env", "GOPROXY").Output()
	must(t, err)
	env := append(os.Environ(),
		"GOBIN="+gobin, "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
		"GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local",
		"GOPROXY=file://"+proxy+","+strings.TrimSpace(string(upstream)),
		"GOPRIVATE=", "GONOPROXY=", "GONOSUMDB="+modulePath)
	for _, in := range installs {
		start := time.Now()
		cmd := exec.Command("go", "install", in)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the README's `go install %s`: %v\n%s", in, err, out)
		}
		t.Logf("ran the README's `go install %s` in %s", in, time.Since(start).Round(time.Second))
	}
	t.Logf("(%s came from this checkout, served as version %s)", modulePath, version)
	return gobin
}

// serveModule writes a file-based module proxy at dir serving the module at
// root (this checkout) as its only version, and returns that version:
// v0.0.0-e2e.HASH, from the files' content, so a rerun with the same
// source reuses the module cache and a changed one does not.
func serveModule(t *testing.T, dir, root string) string {
	t.Helper()
	files := moduleFiles(t, root)
	h := sha256.New()
	for _, f := range files {
		_, _ = io.WriteString(h, f.name+"\x00")
		_, _ = h.Write(f.body)
	}
	version := "v0.0.0-e2e." + hex.EncodeToString(h.Sum(nil))[:12]

	at := filepath.Join(dir, filepath.FromSlash(modulePath), "@v")
	must(t, os.MkdirAll(at, 0o755))
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(modulePath + "@" + version + "/" + f.name)
		must(t, err)
		_, err = w.Write(f.body)
		must(t, err)
	}
	must(t, zw.Close())
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	must(t, err)
	info, err := json.Marshal(map[string]any{"Version": version, "Time": time.Now().UTC().Format(time.RFC3339)})
	must(t, err)
	for name, body := range map[string][]byte{
		"list": []byte(version + "\n"), version + ".info": info, version + ".mod": gomod, version + ".zip": buf.Bytes(),
	} {
		must(t, os.WriteFile(filepath.Join(at, name), body, 0o644))
	}
	return version
}

// moduleFile is one file of the module zip: its slash-separated name and
// its content.
type moduleFile struct {
	name string
	body []byte
}

// moduleFiles lists the module's files as the module proxy would serve
// them: the files git tracks or would track (build output such as bin/
// and dist/ is ignored), sorted, without the nested modules (folders with
// their own go.mod).
func moduleFiles(t *testing.T, root string) []moduleFile {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-co", "--exclude-standard", "-z").Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		// git says why (no repository, a work tree it does not trust).
		t.Fatalf("listing the module's files with git in %s: %v: %s", root, err, bytes.TrimSpace(ee.Stderr))
	}
	must(t, err)
	names := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	sort.Strings(names)
	var nested []string
	for _, n := range names {
		if dir := path.Dir(n); path.Base(n) == "go.mod" && dir != "." {
			nested = append(nested, dir+"/")
		}
	}
	var files []moduleFile
	for _, n := range names {
		if slices.ContainsFunc(nested, func(d string) bool { return strings.HasPrefix(n, d) }) {
			continue
		}
		fi, err := os.Lstat(filepath.Join(root, n))
		if err != nil || !fi.Mode().IsRegular() { // deleted in the work tree, or a link
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, n))
		must(t, err)
		files = append(files, moduleFile{n, b})
	}
	return files
}

// podImageArchive writes the README pod's image as a docker-save archive
// for ctr images import: busybox's sh (the pod runs `sh -ec`) with the few
// applets the script calls, the binaries in gobin on the PATH, and root's
// home.
func podImageArchive(t *testing.T, path, busybox, gobin string) {
	t.Helper()
	if err := staticELF(busybox); err != nil {
		t.Fatalf("%s: %v (install Debian's busybox-static, as test/cluster/install.sh does)", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.ModTime, h.Size = time.Unix(0, 0), int64(len(body))
		must(t, tw.WriteHeader(h))
		_, err := tw.Write(body)
		must(t, err)
	}
	for _, d := range []string{"bin/", "etc/", "root/", "usr/", "usr/local/", "usr/local/bin/"} {
		add(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir}, nil)
	}
	add(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir}, nil)
	add(&tar.Header{Name: "etc/passwd", Mode: 0o644, Typeflag: tar.TypeReg}, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	bb, err := os.ReadFile(busybox)
	must(t, err)
	add(&tar.Header{Name: "bin/busybox", Mode: 0o755, Typeflag: tar.TypeReg}, bb)
	for _, applet := range []string{"sh", "mkdir", "echo", "cat"} {
		add(&tar.Header{Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, Typeflag: tar.TypeSymlink}, nil)
	}
	for _, prog := range []string{"crane", "docker-credential-cgr"} {
		b, err := os.ReadFile(filepath.Join(gobin, prog))
		must(t, err)
		add(&tar.Header{Name: "usr/local/bin/" + prog, Mode: 0o755, Typeflag: tar.TypeReg}, b)
	}
	must(t, tw.Close())
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	must(t, err)
	img, err := mutate.AppendLayers(empty.Image, layer)
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = v1.Config{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root"}, WorkingDir: "/root"}
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	tag, err := name.NewTag(podImage)
	must(t, err)
	must(t, tarball.WriteToFile(path, tag, img))
}

// staticELF reports why the program at path is not a static executable.
func staticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read only
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errNotStatic
		}
	}
	return nil
}

var errNotStatic = errors.New("it is dynamically linked (it names an ELF interpreter), so it cannot run in an image without a C library")

// importImage imports a docker-save archive into containerd's CRI
// namespace, unpacked for the snapshotter the CRI uses.
func (c *cluster) importImage(t *testing.T, archive string) {
	t.Helper()
	out, err := c.ctr(2*time.Minute, "-n", "k8s.io", "images", "import", "--snapshotter", "native", archive)
	if err != nil {
		t.Fatalf("importing %s: %v\n%s", filepath.Base(archive), err, out)
	}
}
