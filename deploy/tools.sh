#!/usr/bin/env bash
# Installs the system tools the tests and the monitor use, when missing (Debian packages):
# Prometheus, Alertmanager and promtool; headless Chromium. Quiet when all are present.
#
# It installs and does nothing else: it never stops, disables or kills a service or a
# process. Debian starts the prometheus and prometheus-alertmanager services when it
# installs them; they are left alone (they may be the user's). consentinel's tests do not
# need them stopped: they run their own Prometheus and Alertmanager on free loopback ports,
# with their own data directories and Alertmanager's gossip port disabled.
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
echo "consentinel: installed. Services the packages started (if any) are left running; the tests do not use them."
