package dockerconfig

import (
	"os"
	"path/filepath"
	"strings"
)

// OnPath is what docker runs for credHelpers "cgr": the first
// docker-credential-cgr on PATH.
type OnPath struct {
	// Path is the first docker-credential-cgr on PATH; empty when there
	// is none.
	Path string
	// Target is Path with every link resolved; empty if that fails.
	Target string
	// Self says Path is the running binary (self), whatever its name.
	Self bool
	// Chainctl says Path is chainctl's link: chainctl's configure-docker
	// makes one of that name, and writes the same credHelpers entry.
	Chainctl bool
	// Shadowed lists the other docker-credential-cgr on PATH, in PATH
	// order; docker never runs them.
	Shadowed []string
}

// FindOnPath looks for docker-credential-cgr in the folders of pathList
// as docker does, and says whether the one docker would run is self (the
// running binary's path) or chainctl's link.
func FindOnPath(pathList, self string) OnPath {
	var o OnPath
	for _, dir := range filepath.SplitList(pathList) {
		if p := lookPath(dir, binaryName); p != "" {
			if o.Path == "" {
				o.Path = p
			} else if p != o.Path {
				o.Shadowed = append(o.Shadowed, p)
			}
		}
	}
	if o.Path == "" {
		return o
	}
	if fi, err := os.Stat(o.Path); err == nil {
		if me, err := os.Stat(self); err == nil {
			o.Self = os.SameFile(fi, me)
		}
	}
	if t, err := filepath.EvalSymlinks(o.Path); err == nil {
		o.Target = t
		o.Chainctl = !o.Self && strings.TrimSuffix(filepath.Base(t), ".exe") == "chainctl"
	}
	return o
}
