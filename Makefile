# The two commands: `make run` and `make test`. Everything installs into .venv.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
WORKERS ?= 2
PYTEST_ARGS ?=
# The development database, store, secret and admin password (settings read VAR_DIR too).
export VAR_DIR ?= var
# The real Keystone's own virtualenv (tests/keystone.py reads the same variable).
export KEYSTONE_VENV ?= var/keystone-venv
SOAK_CLIENTS ?= 16
SOAK_SECONDS ?= 300
SOAK_NODES ?= 1

.PHONY: run test test-deps test-sqlite test-postgres test-keystone keystone-venv test-ceph ceph-deps ceph-bindings test-rabbitmq rabbitmq-deps test-glance glance-venv test-cluster lint format bench soak clean

$(VENV)/.runtime: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r <($(PY) .ci/requirements.py) 2>&1 | (grep -v "is ignored: it is neither" || true)
	@$(PY) -c "import django, django_fsm, rest_framework, gunicorn"  # fail here, not later
	@touch $@

$(VENV)/.test: $(VENV)/.runtime pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check -r <($(PY) .ci/requirements.py test) 2>&1 | (grep -v "is ignored: it is neither" || true)
	@$(PY) -c "import pytest, pytest_django"
	@touch $@

$(VENV)/.bench: $(VENV)/.runtime pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check -r <($(PY) .ci/requirements.py bench) 2>&1 | (grep -v "is ignored: it is neither" || true)
	@$(PY) -c "import psutil, glanceclient"
	@touch $@

# The `glance` CLI the README's "Using it" block runs beside `make run`.
$(VENV)/.client: $(VENV)/.runtime pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check -r <($(PY) .ci/requirements.py client) 2>&1 | (grep -v "is ignored: it is neither" || true)
	@touch $@

# manage.py finds this development secret by itself (glance_site/settings.py).
$(VAR_DIR)/secret_key:
	@mkdir -p $(VAR_DIR) && umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

run: $(VENV)/.runtime $(VENV)/.client $(VAR_DIR)/secret_key
	@export ALLOWED_HOSTS="$${ALLOWED_HOSTS:-127.0.0.1,localhost}"; \
	$(PY) manage.py migrate --noinput -v0 || exit 1; \
	$(PY) manage.py collectstatic --noinput -v0 || exit 1; \
	$(PY) manage.py ensure_admin || exit 1; \
	echo "Serving http://$(HOST):$(PORT)/admin/ and /v2/images (Ctrl-C stops the server, the scrubber and the import worker)"; \
	$(PY) manage.py scrub_images --daemon & scrubber=$$!; \
	$(PY) manage.py db_worker --interval 1 & worker=$$!; \
	trap 'kill $$scrubber $$worker 2>/dev/null' EXIT; \
	HOST=$(HOST) PORT=$(PORT) WORKERS=$(WORKERS) $(VENV)/bin/gunicorn -c glance_site/gunicorn.conf.py

test: test-sqlite test-postgres test-keystone test-ceph test-rabbitmq test-glance test-cluster

# Debian's chromium and the PostgreSQL server: installed when missing (as root, with
# apt-get), else one line each says what is missing and that part is skipped.
test-deps:
	@.ci/setup-test-deps.sh

test-sqlite: $(VENV)/.test test-deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# No server binaries: test-deps has said so (and failed, with REQUIRE_POSTGRES=1).
test-postgres: $(VENV)/.test test-deps
	@source .ci/pg.sh; \
	if [ -z "$$(pg_bin)" ]; then exit 0; fi; \
	pg_up || exit 1; trap pg_down EXIT; \
	echo "PostgreSQL pass on $$DATABASE_URL"; \
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Keystone's virtualenv, KEYSTONE_VENV, rebuilt when tests/keystone_requirements.txt
# changed; one line and the Keystone tests skip where it cannot be built (an error with
# REQUIRE_KEYSTONE=1).
keystone-venv:
	@PYTHON=$(PYTHON) .ci/keystone-venv.sh

# The tests against a real Keystone (tests/keystone_mode, marker `keystone`), once: the
# two passes above deselect them (pyproject's addopts). Exit 5 ("no tests ran") is the
# -k of a PYTEST_ARGS that matched none of them, not a failure.
test-keystone: $(VENV)/.test keystone-venv
	$(VENV)/bin/pytest -m keystone tests/keystone_mode $(PYTEST_ARGS) || [ $$? = 5 ]

# Debian's Ceph and its rados/rbd modules linked into .venv (.ci/ceph-deps.sh):
# installed when missing (as root), else one line and the Ceph tests skip (an error
# with REQUIRE_CEPH=1). `make ceph-bindings` only links the modules, for an RBD store.
ceph-deps: $(VENV)/.runtime
	@.ci/ceph-deps.sh

ceph-bindings: $(VENV)/.runtime
	@.ci/ceph-deps.sh --link-only

# The tests against a real, throwaway Ceph (tests/ceph_mode, marker `ceph`; the RBD
# store and the S3 suite on radosgw), once: the two passes above deselect them.
test-ceph: $(VENV)/.test ceph-deps
	$(VENV)/bin/pytest -m ceph tests/ceph_mode $(PYTEST_ARGS) || [ $$? = 5 ]

# Debian's rabbitmq-server (.ci/rabbitmq-deps.sh): installed when missing (as root),
# else one line and the RabbitMQ tests skip (an error with REQUIRE_RABBITMQ=1).
rabbitmq-deps:
	@.ci/rabbitmq-deps.sh

# Notifications on a real, throwaway RabbitMQ (tests/rabbitmq_mode, marker `rabbitmq`;
# the production server sends, an oslo.messaging listener receives, the broker is
# stopped and started again), once: the two passes above deselect them.
test-rabbitmq: $(VENV)/.test rabbitmq-deps
	$(VENV)/bin/pytest -m rabbitmq tests/rabbitmq_mode $(PYTEST_ARGS) || [ $$? = 5 ]

# Glance 33's own virtualenv (tests/glance.py: PyPI's glance and uwsgi, pinned in
# benchmarks/glance-requirements.txt; var/bench/glance-venv, shared with `make bench`),
# built once; where it cannot be, one line and the Glance tests skip (an error with
# REQUIRE_GLANCE=1).
glance-venv: $(VENV)/.test
	@$(PY) -c "from tests.glance import missing; p = missing(); p and print(f'glance-venv: {p}: the Glance tests are skipped')"; \
	if [ "$${REQUIRE_GLANCE:-0}" = 1 ]; then $(PY) -c "from tests.glance import missing; raise SystemExit(1 if missing() else 0)"; fi

# import_glance against a real Glance 33 (tests/glance_mode, marker `glance`), once: the
# two database passes deselect them. Exit 5 is a PYTEST_ARGS -k that matched none.
test-glance: $(VENV)/.test glance-venv
	$(VENV)/bin/pytest -m glance tests/glance_mode $(PYTEST_ARGS) || [ $$? = 5 ]

# Three nodes behind nginx on one PostgreSQL (tests/test_cluster.py, marker `cluster`),
# once: the two passes above deselect them. It starts a PostgreSQL of its own; without
# nginx or the PostgreSQL server one line says so and they are skipped (an error with
# REQUIRE_CLUSTER=1). Exit 5 is a PYTEST_ARGS -k that matched none of them.
test-cluster: $(VENV)/.test test-deps
	@source .ci/pg.sh; missing=""; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="nginx (apt-get install nginx-light)"; \
	[ -n "$$(pg_bin)" ] || missing="$${missing:+$$missing, }PostgreSQL server binaries (apt-get install postgresql)"; \
	if [ -n "$$missing" ]; then \
	  if [ "$${REQUIRE_CLUSTER:-0}" = 1 ]; then echo "test-cluster: no $$missing, and REQUIRE_CLUSTER=1" >&2; exit 1; fi; \
	  echo "test-cluster: no $$missing: the cluster tests are skipped"; exit 0; \
	fi; \
	pg_up || exit 1; trap pg_down EXIT; \
	echo "Cluster tests: three nodes behind nginx on $$DATABASE_URL"; \
	$(VENV)/bin/pytest -m cluster tests/test_cluster.py $(PYTEST_ARGS) || [ $$? = 5 ]

# A bounded load run on loopback (tests/soak.py): SOAK_CLIENTS clients for SOAK_SECONDS
# against the production server and the scrubber daemon, then every active image's bytes
# checked against its checksum and `verify_store --rehash`. PostgreSQL when DATABASE_URL
# names a server (`source .ci/pg.sh; pg_up; make soak; pg_down`). SOAK_NODES=3: against
# three nodes behind nginx (tests/cluster.py) on PostgreSQL (DATABASE_URL's, else one of
# its own).
soak: $(VENV)/.test
	$(PY) -m tests.soak --clients $(SOAK_CLIENTS) --seconds $(SOAK_SECONDS) --nodes $(SOAK_NODES)

# Speed, memory and scale against the production server on a scratch database and
# store (benchmarks/run.py; issue 6), started by tests/live.py as the tests and
# `make soak` start it, beside real Glance 33 (tests/glance.py; its pinned
# venv goes to var/bench/ on the first run). Prints tables, writes benchmarks/results/.
# BENCH_ARGS=--quick for small sizes, --profile for py-spy top lines, --no-glance.
BENCH_ARGS ?=
bench: $(VENV)/.bench
	$(PY) -m benchmarks.run $(BENCH_ARGS)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) var
