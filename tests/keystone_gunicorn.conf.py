"""gunicorn's configuration for the Keystone the tests start (tests/keystone.py), read by
the Keystone venv's gunicorn; the bind address and the config file come from its
command line and environment (OS_KEYSTONE_CONFIG_FILES).

One worker: Keystone's token cache (oslo_cache.dict) lives in the worker's memory, and
with it a token validation costs ~15 ms instead of ~900 ms. Threads so that a slow
request (a login hashing a password) does not hold up the registry's validations.
"""

import sys

wsgi_app = "keystone.wsgi.api:application"
workers = 1
threads = 4
worker_class = "gthread"
timeout = 120
accesslog = None


def post_fork(server, worker):
    # Keystone hands sys.argv to oslo.config when the worker loads the application;
    # gunicorn's own arguments (--bind, --config, ...) would be refused as Keystone's.
    del sys.argv[1:]
