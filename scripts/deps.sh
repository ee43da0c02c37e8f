#!/usr/bin/env bash
# Installs what the tests use besides Go, from Debian's packages: real
# clients and peers (curl, openssl, nginx, haproxy), promtool for the metrics
# check, chromium for the dashboard's browser test and iptables (iptables-nft)
# and ip (iproute2) for the transparent capture tests. Idempotent and quiet
# when everything is present; `make test` runs it first.
set -euo pipefail

# command -> Debian package
declare -A need=(
  [curl]=curl
  [openssl]=openssl
  [git]=git
  [pgrep]=procps
  [nginx]=nginx
  [haproxy]=haproxy
  [promtool]=prometheus
  [chromium]=chromium
  [iptables-nft-restore]=iptables
  [ip]=iproute2
)

missing=()
for cmd in "${!need[@]}"; do
  # nginx, haproxy and iptables live in /usr/sbin, which a user's PATH may lack.
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${need[$cmd]}")
done
# ca-certificates has no command of its own.
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
((${#missing[@]})) || exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "deps: missing ${missing[*]}; install them as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing ${missing[*]} and no apt-get here; install the equivalent packages" >&2
  exit 1
fi
echo "deps: installing ${missing[*]} (Debian packages the tests use)"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx and haproxy are test peers that tests start on their own ports, not
# services: the packages' own instances (port 80) are stopped if they started.
"${sudo[@]}" systemctl stop nginx haproxy >/dev/null 2>&1 || true
"${sudo[@]}" service nginx stop >/dev/null 2>&1 || true
"${sudo[@]}" service haproxy stop >/dev/null 2>&1 || true
