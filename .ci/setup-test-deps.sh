#!/usr/bin/env bash
# What `make test` needs beyond .venv: Debian's chromium (browser tests), the
# PostgreSQL server binaries (the second pass and the cluster tests), nginx (the
# cluster tests' load balancer) and qemu-img and genisoimage (real disk images for the
# format-inspection tests). `make test` and `.ci/run` both come through here, so a
# fresh machine needs no set-up of its own.
#
# As root with apt-get, a missing one is installed. Otherwise one line says what is
# missing and how to get it, and that part is skipped (the browser tests skip, the
# PostgreSQL pass is left out) -- an error only with REQUIRE_BROWSER=1,
# REQUIRE_POSTGRES=1, REQUIRE_CLUSTER=1 or REQUIRE_QEMU=1, as in CI.
set -uo pipefail
cd "$(dirname "$0")/.."
source .ci/pg.sh

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
status=0
updated=0

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {  # the Debian package named $1; quiet unless it fails
  echo "setup-test-deps: installing Debian's $1 (apt-get install $1)"
  if [ "$updated" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true  # a stale list may still do
    updated=1
  fi
  # --no-upgrade: this installs what is missing, it never upgrades the machine.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade "$1" >/dev/null
}

missing() {  # $1 what, $2 how to get it, $3 what is skipped, $4 the REQUIRE_ variable
  if [ "${!4:-0}" = 1 ]; then
    echo "setup-test-deps: $1 and $4=1: $2" >&2
    status=1
  else
    echo "setup-test-deps: $1: $3 ($2)"
  fi
}

# A CHROMIUM or PG_LIB of one's own is used as it is: only Debian's places are ours
# to fill.
if [ ! -x "$CHROMIUM" ] && [ "$CHROMIUM" = /usr/bin/chromium ] && can_install; then
  apt_install chromium
fi
if [ ! -x "$CHROMIUM" ]; then
  missing "no chromium at $CHROMIUM" "apt-get install chromium, as root" \
    "the browser tests skip" REQUIRE_BROWSER
fi

if [ -z "$(pg_bin)" ] && [ -z "${PG_LIB:-}" ] && can_install; then
  apt_install postgresql
fi
if [ -z "$(pg_bin)" ]; then
  missing "no PostgreSQL server binaries under $(pg_lib)" "apt-get install postgresql, as root" \
    "the PostgreSQL pass is skipped" REQUIRE_POSTGRES
fi

# nginx in front of three nodes for the cluster tests (tests/cluster.py); nginx-light is
# all they use of it.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] && can_install; then
  apt_install nginx-light
fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  missing "no nginx" "apt-get install nginx-light, as root" "the cluster tests skip" \
    REQUIRE_CLUSTER
fi

# Real disk images for the format-inspection tests (tests/disk_images.py).
for pair in qemu-img:qemu-utils genisoimage:genisoimage; do
  tool=${pair%%:*} package=${pair##*:}
  if ! command -v "$tool" >/dev/null 2>&1 && can_install; then
    apt_install "$package"
  fi
  if ! command -v "$tool" >/dev/null 2>&1; then
    missing "no $tool" "apt-get install $package, as root" \
      "the format-inspection tests skip" REQUIRE_QEMU
  fi
done

exit $status
