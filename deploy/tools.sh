#!/usr/bin/env bash
# Installs the system tools the tests and the monitor use, when missing (Debian packages):
# Prometheus, Alertmanager and promtool; headless Chromium. Quiet when all are present.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "consentinel: missing system packages: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "consentinel: installing ${need[*]} (Debian packages, first run only)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $(printf "%s\n" "${need[@]}" | sort -u) >/dev/null
# services installed by the packages are not ours to run
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
  (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || true
  pkill -f "^/usr/bin/$svc" 2>/dev/null || true
done
