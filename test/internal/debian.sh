# debian.sh: sourced by test/e2e/install.sh and test/cluster/install.sh.
# install_missing [APT-GET-OPTION ...] -- PACKAGE ...: installs the Debian packages that are not
# installed yet; apt-get update runs only when one is missing. Under sudo when not root.
install_missing() {
	local opts=() pkgs=() missing=() sudo=() pkg
	while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
	[ "${1-}" = "--" ] || { echo "usage: install_missing [APT-GET-OPTION ...] -- PACKAGE ..." >&2; return 2; }
	shift
	pkgs=("$@")
	if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
	for pkg in "${pkgs[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$pkg")
		fi
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		echo "install.sh: ${pkgs[*]} already installed"
		return
	fi
	echo "install.sh: installing ${missing[*]}"
	# Through env: sudo would drop DEBIAN_FRONTEND from its own environment.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${opts[@]}" "${missing[@]}"
}
