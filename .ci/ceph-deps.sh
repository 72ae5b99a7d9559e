#!/usr/bin/env bash
# What the Ceph tests (tests/ceph_mode, tests/ceph.py) and an RBD store need beyond
# .venv: Debian's Ceph daemons and tools, and its rados/rbd Python modules made
# visible to .venv. `make test-ceph` comes through here; `make ceph-bindings` runs
# only the linking, for an operator whose machine already has python3-rbd.
#
# As root with apt-get, missing packages are installed (~50 s, ~290 MB). Otherwise
# one line says what is missing and the Ceph tests skip -- an error with
# REQUIRE_CEPH=1, as in CI.
set -uo pipefail
cd "$(dirname "$0")/.."

PACKAGES="ceph-mon ceph-osd ceph-mgr radosgw ceph-common python3-rados python3-rbd"
DIST=/usr/lib/python3/dist-packages
PY=.venv/bin/python

fail_or_skip() {
  if [ "${REQUIRE_CEPH:-0}" = 1 ]; then
    echo "ceph-deps: $1 and REQUIRE_CEPH=1" >&2
    exit 1
  fi
  echo "ceph-deps: $1: the Ceph tests skip"
  exit 0
}

if [ "${1:-}" != --link-only ]; then
  need=""
  for binary in ceph-mon ceph-osd ceph-mgr radosgw rbd; do
    command -v "$binary" >/dev/null 2>&1 || need=1
  done
  ls $DIST/rbd.cpython-*.so >/dev/null 2>&1 || need=1
  if [ -n "$need" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "ceph-deps: installing Debian's Ceph (apt-get install $PACKAGES)"
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade \
        --no-install-recommends $PACKAGES >/dev/null || fail_or_skip "apt-get install $PACKAGES failed"
    else
      fail_or_skip "no Ceph here (apt-get install $PACKAGES, as root)"
    fi
  fi
fi

# Debian builds the modules for its own python3; a venv of another Python with the
# same ABI (the cpython-311 tag) can load them: link them into its site-packages.
site=$($PY -c "import sysconfig; print(sysconfig.get_paths()['platlib'])")
tag=$($PY -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
for module in rados rbd; do
  source_so="$DIST/$module$tag"
  [ -e "$source_so" ] || fail_or_skip "no $source_so for .venv's Python ($tag)"
  ln -sf "$source_so" "$site/"
done
$PY -c "import rados, rbd" || fail_or_skip "rados/rbd do not load in .venv"
