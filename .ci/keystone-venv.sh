#!/usr/bin/env bash
# The virtualenv of the real Keystone the Keystone-mode tests start (tests/keystone.py):
# KEYSTONE_VENV, by default var/keystone-venv, from tests/keystone_requirements.txt.
# Apart from .venv, because OpenStack pins ~100 packages of its own.
#
# Built only when the requirements changed (the venv keeps their hash in
# .requirements-sha256, written last, so a half-built one is built again; tests/keystone.py
# reads it too) or when PYTHON is another Python than the venv's. When it cannot be built, one line says so and the Keystone tests skip -- an
# error only with REQUIRE_KEYSTONE=1, as in CI.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=${KEYSTONE_VENV:-var/keystone-venv}
REQUIREMENTS=tests/keystone_requirements.txt
PYTHON=${PYTHON:-python3}
STAMP=$VENV/.requirements-sha256
LOG=$VENV.log

cannot() {  # $1 why
  if [ "${REQUIRE_KEYSTONE:-0}" = 1 ]; then
    echo "keystone-venv: cannot build $VENV ($1) and REQUIRE_KEYSTONE=1" >&2
    [ -f "$LOG" ] && tail -n 30 "$LOG" >&2
    exit 1
  fi
  echo "keystone-venv: cannot build $VENV ($1): the Keystone tests skip"
  exit 0
}

command -v "$PYTHON" >/dev/null 2>&1 || cannot "no $PYTHON"
want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] &&
  [ "$("$VENV/bin/python" --version 2>&1)" = "$("$PYTHON" --version 2>&1)" ]; then
  exit 0
fi

# From scratch, not on top of the old one: a package the new list dropped must go too.
echo "keystone-venv: building $VENV from $REQUIREMENTS (about a minute; log in $LOG)"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
{
  "$PYTHON" -m venv "$VENV" &&
    "$VENV/bin/python" -m pip install --disable-pip-version-check -r "$REQUIREMENTS" &&
    "$VENV/bin/python" -m pip check &&
    "$VENV/bin/python" -c "import keystone.server.wsgi, gunicorn"
} >"$LOG" 2>&1 || cannot "pip failed, see $LOG"
echo "$want" >"$STAMP"
rm -f "$LOG"
