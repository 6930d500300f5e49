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
# shellcheck source=../internal/debian.sh
. "$here/../internal/debian.sh"
install_missing --no-install-recommends -- "${PACKAGES[@]}"
# etcd-server's package starts a system etcd on the default ports (2379, 2380) where there is
# an init system; the test runs its own on free ports, so that one is left alone.

"$here/build-kube.sh" "$dir"
