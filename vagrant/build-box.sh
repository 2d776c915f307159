#!/usr/bin/env bash
# Build a local Debian box for the vagrant-lxc provider and register it: Debian 13 (trixie),
# the one CI proves, or Debian 12 (bookworm) for `make test-matrix`; the suite follows the box
# name (…debian12 -> bookworm) unless CELERYKIT_DEBIAN_SUITE says otherwise.
# Rebuilt only when the box is missing or this recipe (or the host's CA certificates) changed.
# Usage: vagrant/build-box.sh [BOX_NAME]   (default: $CELERYKIT_LXC_BOX or celerykit/debian13)
set -euo pipefail

box_name=${1:-${CELERYKIT_LXC_BOX:-celerykit/debian13}}
case $box_name in
  *debian12*) default_suite=bookworm ;;
  *) default_suite=trixie ;;
esac
suite=${CELERYKIT_DEBIAN_SUITE:-$default_suite}
mirror=${CELERYKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/celerykit
stamp="$cache_dir/box-${box_name//\//_}.recipe"
vagrant_key=$(find /usr/share/rubygems-integration /usr/lib/ruby /opt/vagrant -path '*/keys/vagrant.pub' 2>/dev/null | head -n 1 || true)
host_cas=(/usr/local/share/ca-certificates/*.crt)
[ -e "${host_cas[0]}" ] || host_cas=()

log() { printf '[box %s +%ss] %s\n' "$box_name" "$SECONDS" "$*"; }

recipe=$( { cat "$0"; cat "${host_cas[@]}" /dev/null; echo "$suite $mirror"; } | sha256sum | cut -d' ' -f1)
if vagrant box list 2>/dev/null | grep -q "^${box_name} .*(lxc" && [ "$(cat "$stamp" 2>/dev/null)" = "$recipe" ]; then
  log "up to date (recipe ${recipe:0:12}); nothing to build"
  exit 0
fi
[ -n "$vagrant_key" ] || { echo "vagrant's insecure public key (keys/vagrant.pub) not found: is vagrant installed?" >&2; exit 1; }

work=$(mktemp -d /var/tmp/celerykit-box.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

log "debootstrap $suite (minbase) into $rootfs"
debootstrap --variant=minbase \
  --include=systemd-sysv,udev,openssh-server,python3,python3-apt,sudo,iproute2,ca-certificates,procps,less \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

log "configuring the root file system"
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
SOURCES

# The vagrant user with Vagrant's insecure key (Vagrant swaps it for a per-machine key) and sudo.
chroot "$rootfs" useradd --create-home --shell /bin/bash vagrant
install -d -m 0700 -o 1000 -g 1000 "$rootfs/home/vagrant/.ssh"
install -m 0600 -o 1000 -g 1000 "$vagrant_key" "$rootfs/home/vagrant/.ssh/authorized_keys"
chroot "$rootfs" chown -R vagrant:vagrant /home/vagrant/.ssh
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$rootfs/etc/sudoers.d/vagrant"
chmod 0440 "$rootfs/etc/sudoers.d/vagrant"

# Vagrant 2.3.4 signs with ssh-rsa, which bookworm's sshd refuses by default.
echo 'PubkeyAcceptedAlgorithms +ssh-rsa' >"$rootfs/etc/ssh/sshd_config.d/10-vagrant-ssh-rsa.conf"
echo 'UseDNS no' >>"$rootfs/etc/ssh/sshd_config.d/10-vagrant-ssh-rsa.conf"
# Host keys are made per container at first boot, never shipped in the box.
rm -f "$rootfs"/etc/ssh/ssh_host_*
cat >"$rootfs/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
chroot "$rootfs" systemctl enable ssh-hostkeys.service ssh.service systemd-networkd.service >/dev/null 2>&1

# DHCP on eth0; the dnsmasq on lxcbr0 hands out the reserved address for the container's MAC.
cat >"$rootfs/etc/systemd/network/eth0.network" <<'NET'
[Match]
Name=eth0

[Network]
DHCP=ipv4
NET

# A shared machine-id would give every container the same DHCP client id (same address).
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"

# Trust the same CAs as the host (TLS to PyPI/apt may be intercepted by a proxy here).
if [ ${#host_cas[@]} -gt 0 ]; then
  cp "${host_cas[@]}" "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
fi
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/log/*.log  # apt lists stay: a fresh server has them too

log "packaging"
tar --numeric-owner -C "$work" -czf "$work/rootfs.tar.gz" ./rootfs
printf '{"provider": "lxc", "version": "1.0.0", "built-with": "celerykit vagrant/build-box.sh"}\n' >"$work/metadata.json"
tar -C "$work" -cf "$work/box.box" metadata.json rootfs.tar.gz
log "registering as $box_name"
vagrant box add --force --name "$box_name" "$work/box.box" >/dev/null
mkdir -p "$cache_dir" && echo "$recipe" >"$stamp"
log "done ($(du -h "$work/box.box" | cut -f1))"
