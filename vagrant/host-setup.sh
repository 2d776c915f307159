#!/usr/bin/env bash
# Prepare this machine to run the local cluster with vagrant-lxc: Debian packages (only the
# missing ones), then LXC networking with one reserved address per machine of vagrant/hosts.yml.
# Idempotent: a second call installs nothing and restarts nothing unless hosts.yml changed.
# Usage: vagrant/host-setup.sh PYTHON   (a Python with PyYAML: the project's venv)
set -euo pipefail

python=${1:?usage: vagrant/host-setup.sh PYTHON}
here=$(cd "$(dirname "$0")" && pwd)
packages=(vagrant vagrant-lxc lxc debootstrap dnsmasq-base iptables rsync openssh-client chromium chromium-driver)
dhcp_conf=/etc/lxc/celerykit-dhcp-hosts.conf
lxc_net=/usr/libexec/lxc/lxc-net

log() { printf '[host-setup +%ss] %s\n' "$SECONDS" "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# lxc-net's settings and the dnsmasq reservations (MAC -> address, name) from vagrant/hosts.yml.
rendered=$("$python" - "$here/hosts.yml" "$dhcp_conf" <<'PY'
import ipaddress, sys, yaml
cluster = yaml.safe_load(open(sys.argv[1]))
net = cluster["networks"]["lxc"]
cidr = ipaddress.ip_network(net["cidr"])
print(f'USE_LXC_BRIDGE="true"\nLXC_BRIDGE="{net["bridge"]}"\nLXC_ADDR="{net["gateway"]}"')
print(f'LXC_NETMASK="{cidr.netmask}"\nLXC_NETWORK="{cidr}"\nLXC_DHCP_RANGE="{net["dynamic_range"]}"')
print(f'LXC_DHCP_MAX="253"\nLXC_DHCP_CONFILE="{sys.argv[2]}"')
print("---")
for m in cluster["machines"]:
    print(f'dhcp-host={m["mac"]},{m["address"]["lxc"]},{m["name"]}')
    print(f'host-record={m["name"]},{m["address"]["lxc"]}')
PY
)
defaults_wanted=${rendered%%---*}
dhcp_wanted=${rendered#*---$'\n'}
changed=no
if [ "$(cat /etc/default/lxc-net 2>/dev/null)" != "${defaults_wanted%$'\n'}" ]; then
  printf '%s' "$defaults_wanted" | as_root tee /etc/default/lxc-net >/dev/null; changed=yes
fi
if [ "$(cat "$dhcp_conf" 2>/dev/null)" != "${dhcp_wanted%$'\n'}" ]; then
  printf '%s\n' "${dhcp_wanted%$'\n'}" | as_root tee "$dhcp_conf" >/dev/null; changed=yes
fi

running=no
ip link show lxcbr0 >/dev/null 2>&1 && pgrep -f "dnsmasq.*lxcbr0" >/dev/null && running=yes
if [ "$changed" = yes ] || [ "$running" = no ]; then
  log "(re)starting lxc-net (config changed: $changed, running: $running)"
  as_root "$lxc_net" stop >/dev/null 2>&1 || true
  # A stale lease for a reserved address under another MAC would otherwise win.
  as_root rm -f /var/lib/misc/dnsmasq.lxcbr0.leases
  as_root "$lxc_net" start || { echo "lxc-net failed to start: check $dhcp_conf and /etc/default/lxc-net" >&2; exit 1; }
fi
log "lxc networking ready ($(ip -4 -o addr show lxcbr0 | awk '{print $4}'))"
