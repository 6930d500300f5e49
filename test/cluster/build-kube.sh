#!/usr/bin/env bash
# build-kube.sh DIR: builds kube-apiserver and kubelet of k8s.io/kubernetes $KUBE_VERSION
# (default: the release test/kubelet's go.mod pins) into DIR, unless DIR already holds both at
# that version. build-kube.sh --pinned prints that pinned release: the Makefile asks it, so the
# pin is read in one place.
#
# k8s.io/kubernetes is not meant to be required as a module: its go.mod replaces every
# staging module (k8s.io/api, k8s.io/client-go, ...) with a folder of its own tree. A module
# that requires it must replace each of those staging modules with its published release
# (v0.MINOR.PATCH for v1.MINOR.PATCH). test/kubelet does, for the release it pins, and lists
# both commands in its tools.go: for that release they are built in that module, from the very
# module versions its tests (make test) compile the kubelet's packages from, with the same
# flags, so on a cold machine those packages compile once. For another release a scratch module
# is made, its replacements read from that release's go.mod so the list follows the version.
set -euo pipefail

out=${1:?usage: build-kube.sh DIR | --pinned}
here=$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
pinned=$(sed -n 's#^[[:space:]]*k8s.io/kubernetes \(v[0-9.]*\)$#\1#p' "$here/../kubelet/go.mod")
if [ "$out" = --pinned ]; then
	[ -n "$pinned" ] || { echo "no k8s.io/kubernetes requirement in $here/../kubelet/go.mod" >&2; exit 1; }
	echo "$pinned"
	exit 0
fi
version=${KUBE_VERSION:-$pinned}
case $version in v1.*.*) ;; *) echo "KUBE_VERSION must look like v1.MINOR.PATCH, not $version" >&2; exit 2 ;; esac
staging=v0.${version#v1.}
minor=${version#v1.}; minor=${minor%%.*}

have() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -qx "Kubernetes $version"; }
if have "$out/kube-apiserver" && have "$out/kubelet"; then
	echo "kube binaries $version already in $out"
	exit 0
fi

# scratch_module makes, in the current folder, a module that requires k8s.io/kubernetes $version
# with its staging modules replaced by their releases, and tidies it; tools.go is test/kubelet's,
# which names both commands.
scratch_module() {
	local gomod gover m n=0
	gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
	[ -f "$gomod" ] || { echo "could not download k8s.io/kubernetes@$version" >&2; exit 1; }
	gover=$(sed -n 's/^go //p' "$gomod")
	printf 'module kubebuild\n\ngo %s\n' "$gover" >go.mod
	cp "$here/../kubelet/tools.go" .
	for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod"); do
		go mod edit -replace="$m=$m@$staging"
		n=$((n + 1))
	done
	echo "replaced $n staging modules with $staging"
	go mod edit -require="k8s.io/kubernetes@$version"
	go mod tidy
}

t0=$(date +%s)
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"

if [ "$version" = "$pinned" ]; then
	echo "building in test/kubelet's module, which pins $version"
	cd "$here/../kubelet"
else
	mkdir "$work/mod"
	cd "$work/mod"
	scratch_module
fi

pkg=k8s.io/component-base/version
cpkg=k8s.io/client-go/pkg/version
ld="-s -w"
for p in $pkg $cpkg; do
	ld="$ld -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
# One go build for both: on 2 cores the kubelet's packages compile while kube-apiserver links,
# where two builds one after the other left a core idle for each link.
echo "building kube-apiserver and kubelet $version"
CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ld" -o "$work/bin/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubelet
for cmd in kube-apiserver kubelet; do
	mv "$work/bin/$cmd" "$out/$cmd.tmp"
	mv "$out/$cmd.tmp" "$out/$cmd"
done
"$out/kube-apiserver" --version
"$out/kubelet" --version
echo "built in $(($(date +%s) - t0))s"
