#!/usr/bin/env bash
# install.sh KUBE_DIR: installs what the cluster test (make e2e-kubelet) runs, and nothing else:
# the Debian packages etcd-server, containerd (with ctr and the runc shim), runc,
# docker-registry (the CNCF distribution registry) and busybox-static (the shell in the README
# pod's image), then kube-apiserver and kubelet built from k8s.io/kubernetes at $KUBE_VERSION
# into KUBE_DIR by build-kube.sh (once: later runs find them there). Idempotent: apt-get update
# runs only when a package is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
dir=${1:?usage: install.sh KUBE_DIR}
here=$(cd "$(dirname "$0")" && pwd)

PACKAGES=(etcd-server containerd runc docker-registry busybox-static)
sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
missing=()
for pkg in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$pkg")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "install.sh: installing ${missing[*]}"
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	echo "install.sh: ${PACKAGES[*]} already installed"
fi
# etcd-server's package starts a system etcd on the default ports (2379, 2380) where there is
# an init system; the test runs its own on free ports, so that one is left alone.

"$here/build-kube.sh" "$dir"
