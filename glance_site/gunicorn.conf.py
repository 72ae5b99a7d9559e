"""How the registry runs under gunicorn. `make run`, the tests' live server and the
benchmarks all start it with this file, so tests and figures describe what operators
run. Command-line options (--bind, --workers, --threads) override these values."""

import os

wsgi_app = "glance_site.wsgi"
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WORKERS", "2"))
# gthread: a long upload or download holds one thread, not a whole worker process.
# Its request bodies stream (no spooling) and its downloads use sendfile(2).
worker_class = "gthread"
threads = int(os.environ.get("THREADS", "4"))
# A multi-GB upload outlasts any fixed deadline; a dead upload is the janitor's job.
timeout = 0
# Behind a load balancer, an idle connection is the balancer's to close: nginx keeps
# one for 60 s (deploy/nginx), and a node closing it first, just as nginx sends a POST
# on it, would be a 502 for that client. gthread holds an idle connection in its
# poller, not a thread, so keeping it costs nothing.
keepalive = 75
control_socket_disable = True
accesslog = "-"
loglevel = "warning"
