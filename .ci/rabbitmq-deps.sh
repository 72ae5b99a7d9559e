#!/usr/bin/env bash
# What the notification tests against a real broker (tests/rabbitmq_mode,
# tests/rabbitmq.py) need beyond .venv: Debian's rabbitmq-server (and the Erlang it
# depends on). `make test-rabbitmq` comes through here.
#
# As root with apt-get, it is installed when missing (~1 min). Otherwise one line
# says what is missing and the RabbitMQ tests skip -- an error with
# REQUIRE_RABBITMQ=1, as in CI. The package's own service is not used: the tests
# start a broker of their own on loopback.
set -uo pipefail

PACKAGE=rabbitmq-server
SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server

fail_or_skip() {
  if [ "${REQUIRE_RABBITMQ:-0}" = 1 ]; then
    echo "rabbitmq-deps: $1 and REQUIRE_RABBITMQ=1" >&2
    exit 1
  fi
  echo "rabbitmq-deps: $1: the RabbitMQ tests skip"
  exit 0
}

if [ -x "$SERVER" ] && command -v epmd >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "rabbitmq-deps: installing Debian's RabbitMQ (apt-get install $PACKAGE)"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade \
    --no-install-recommends $PACKAGE >/dev/null || fail_or_skip "apt-get install $PACKAGE failed"
  [ -x "$SERVER" ] || fail_or_skip "no $SERVER after installing $PACKAGE"
else
  fail_or_skip "no RabbitMQ here (apt-get install $PACKAGE, as root)"
fi
