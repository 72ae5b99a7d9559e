# Throwaway PostgreSQL cluster for the test run: `source .ci/pg.sh; pg_up; ...; pg_down`.
# initdb and pg_ctl refuse to run as root, so as root they run as the postgres user.
# It listens on a private unix socket only, so it cannot clash with another server.
# random_page_cost=1.1 is the usual setting for a server on SSD or with its data in
# memory (the README recommends it): with the default 4, PostgreSQL scans the whole
# tag and property tables to fetch those of a 1,000-image page.

# PG_LIB: where Debian puts the server binaries (another place for a test of the set-up).
pg_lib() { echo "${PG_LIB:-/usr/lib/postgresql}"; }
pg_bin() { ls -d "$(pg_lib)"/*/bin 2>/dev/null | sort -V | tail -1; }

pg_up() {
  local bin run=""
  bin=$(pg_bin)
  [ -n "$bin" ] || { echo "pg.sh: no PostgreSQL server binaries under $(pg_lib)" >&2; return 1; }
  PGTMP=$(mktemp -d "${TMPDIR:-/tmp}/pgtest.XXXXXX")
  chmod 755 "$PGTMP"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$PGTMP"; run="runuser -u postgres --"; fi
  $run "$bin/initdb" -D "$PGTMP/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
      >"$PGTMP/initdb.log" 2>&1 || { cat "$PGTMP/initdb.log" >&2; return 1; }
  $run "$bin/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 30 \
      -o "-k $PGTMP -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c random_page_cost=1.1" \
      start >/dev/null || { cat "$PGTMP/server.log" >&2; return 1; }
  export PGTMP PG_BIN="$bin"
  export DATABASE_URL="postgres://postgres@/postgres?host=$PGTMP"
}

pg_down() {
  [ -n "${PGTMP:-}" ] || return 0
  local run=""
  [ "$(id -u)" = 0 ] && run="runuser -u postgres --"
  $run "$PG_BIN/pg_ctl" -D "$PGTMP/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$PGTMP"
  unset PGTMP DATABASE_URL
}
