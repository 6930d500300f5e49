#!/usr/bin/env bash
# Installs what the end-to-end suite (make e2e) drives, and nothing else:
# the Debian packages docker.io (dockerd, containerd, the docker CLI), skopeo
# and docker-registry (the CNCF distribution registry), and crane at a pinned
# version. Idempotent: it runs apt-get update only when a package is missing,
# and go install only when crane is missing or at another version.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# The go-containerregistry version go.mod pins, so crane and the library
# the helper's tests use are the same code.
CRANE_VERSION="${CRANE_VERSION:-v0.22.1}"
PACKAGES=(docker.io skopeo docker-registry)

# shellcheck source=../internal/debian.sh
. "$(dirname "$0")/../internal/debian.sh"
install_missing -- "${PACKAGES[@]}"

gobin="$(go env GOPATH | cut -d: -f1)/bin"
if [ -x "$gobin/crane" ] && [ "$("$gobin/crane" version 2>/dev/null)" = "$CRANE_VERSION" ]; then
	echo "install.sh: crane $CRANE_VERSION already in $gobin"
else
	echo "install.sh: go install crane@$CRANE_VERSION into $gobin"
	GOBIN="$gobin" go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
fi
