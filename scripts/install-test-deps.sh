#!/bin/sh
# Installs the Debian packages the integration tests run for real:
# zfs-fuse (ZFS pool on a file), openssh-server (git over SSH), gnupg (signed
# commits), prometheus (promtool and a real scrape), git and curl.
set -eu
pkgs="zfs-fuse openssh-server gnupg prometheus git curl"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install as root: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages' own services from starting: tests start
# every daemon they need themselves.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends $missing
