"""Several registry nodes on one PostgreSQL database and one store, behind nginx: the
installation deploy/ describes, on loopback, for the tests (tests/test_cluster.py),
`make soak SOAK_NODES=3` and benchmarks.

Each node is what an operator runs on one machine: the production gunicorn
(tests/live.py's `serving`), its scrubber daemon (`manage.py scrub_images --daemon`)
and an import worker (`manage.py db_worker --interval 1`). nginx balances them with
the site deploy/nginx/glance-registry.conf.template ships, rendered here as an
operator renders it (the same four placeholders), inside a small nginx.conf of its
own: prefix, pid, logs and temporary files in the cluster's folder, nothing of the
system's nginx. nginx is stopped by its pid.

`running_cluster` is a plain context manager (no pytest here), like
`running_registry`. The store is whatever the environment names: the filesystem
store under the cluster's folder by default (a shared folder standing in for shared
storage), or another one chosen by `env` (IMAGES_S3_BUCKET, IMAGES_RBD_POOL, ...),
passed through to every process untouched.
"""

import contextlib
import getpass
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from tests.live import (
    ROOT,
    Deployment,
    Registry,
    free_port,
    fresh_deployment,
    running_scrubber,
    running_worker,
    serving,
    stop,
    throwaway_postgres,
)

NGINX_SITE = ROOT / "deploy" / "nginx" / "glance-registry.conf.template"
PLACEHOLDER = re.compile(r"\$\{(REGISTRY_[A-Z_]+)\}")
# "scrubbed 3, failed 0, finished deletes 0, killed stale uploads 0, ..." (scrub_images)
SCRUB_FIGURE = re.compile(r"([a-z][a-z ]*?) (\d+)")

# The processes' own settings beside the cluster's: the scrubbers wake every second,
# so a test or the soak sees the janitor's work without waiting five minutes.
NODE_ENV = {"IMAGES_SCRUB_WAKEUP_SECONDS": "1"}

MAIN_CONF = """\
# tests/cluster.py: nginx for one cluster, nothing shared with the system's nginx.
{user}worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/glance-registry.conf;
}}
"""


def nginx_binary() -> str | None:
    """Debian's nginx (packages nginx or nginx-light), or None."""
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


def render_site(**values: str) -> str:
    """deploy/'s site with its ${REGISTRY_...} placeholders filled, as envsubst fills
    them given their names: nginx's own $variables are left alone."""
    template = NGINX_SITE.read_text()
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise ValueError(f"no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


@dataclass
class Node:
    """One machine's share: a gunicorn, a scrubber daemon, an import worker."""

    name: str
    registry: Registry
    scrubber: subprocess.Popen
    worker: subprocess.Popen

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.registry.port}"

    def kill(self) -> None:
        """SIGKILL everything of this node at once, as when its machine dies: the
        gunicorn master and its workers, the scrubber and the import worker."""
        pids = [*self.registry.workers(), self.registry.pid, self.scrubber.pid, self.worker.pid]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # The master is reaped by serving() at the end; its workers, orphaned, by init.
        for proc in (self.scrubber, self.worker):
            proc.wait()

    def scrub_reports(self) -> list[dict[str, int]]:
        """Each pass the node's scrubber has reported so far: {"scrubbed": 3, "failed":
        0, "killed stale uploads": 0, ...}, from its lines on standard output."""
        log = self.registry.log.parent / "scrubber.log"
        text = log.read_text() if log.exists() else ""
        return [
            {what: int(n) for what, n in SCRUB_FIGURE.findall(line)}
            for line in text.splitlines()
            if line.startswith("scrubbed ")
        ]


@dataclass
class Cluster:
    url: str  # nginx
    nodes: list[Node]
    deployment: Deployment
    dir: Path
    nginx_pid: int

    @property
    def tokens(self) -> dict[str, str]:
        return self.deployment.tokens

    @property
    def env(self) -> dict[str, str]:
        return self.deployment.env

    @property
    def store(self) -> Path:
        return Path(self.env["IMAGES_STORE"])

    @property
    def access_log(self) -> Path:
        return self.dir / "nginx" / "access.log"

    def manage(self, *args: str) -> str:
        """A management command on the cluster's database and store (any node's)."""
        return self.nodes[0].registry.manage(*args)

    def as_registry(self) -> Registry:
        """The cluster seen by a client: nginx's URL with the cast's tokens."""
        return Registry(url=self.url, tokens=self.tokens, store=self.store, env=self.env)

    def upstreams_served(self) -> list[str]:
        """The node (host:port) nginx passed each request to, in order; "a, b" when
        the first refused and the next one answered."""
        text = self.access_log.read_text() if self.access_log.exists() else ""
        return re.findall(r"upstream=(\S+(?:, \S+)*)$", text, re.M)


@contextlib.contextmanager
def running_cluster(
    tmp: Path,
    *,
    nodes: int = 3,
    workers: int = 2,
    threads: int = 4,
    env: dict[str, str] | None = None,
    database: str | None = None,
) -> Iterator[Cluster]:
    """`nodes` registry nodes and nginx in front, on a fresh database and store.

    `database` is the URL of a PostgreSQL server to make the database on; by default
    DATABASE_URL's, when it names one, else a throwaway server of its own
    (.ci/pg.sh). `env` adds to every process's environment."""
    nginx = nginx_binary()
    if nginx is None:
        raise RuntimeError("no nginx (apt-get install nginx-light, as root)")
    with contextlib.ExitStack() as stack:
        if database is None:
            database = os.environ.get("DATABASE_URL", "")
        if not database.startswith(("postgres://", "postgresql://")):
            database = stack.enter_context(throwaway_postgres())
            if database is None:
                raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql)")
        deployment = stack.enter_context(
            fresh_deployment(tmp, env={**NODE_ENV, **(env or {})}, database=database)
        )
        # The nodes start side by side (each gunicorn takes seconds to import Django);
        # each one's processes are stopped with the cluster, started or not.
        with ThreadPoolExecutor(max_workers=nodes) as pool:
            starting = [
                pool.submit(_start_node, deployment, tmp / f"node{n}", workers, threads)
                for n in range(1, nodes + 1)
            ]
            wait(starting)
        for future in starting:
            if future.exception() is None:
                stack.callback(future.result()[1].close)
        members = [future.result()[0] for future in starting]
        port = free_port()
        pid = stack.enter_context(_running_nginx(nginx, tmp / "nginx", port, members))
        yield Cluster(
            url=f"http://127.0.0.1:{port}",
            nodes=members,
            deployment=deployment,
            dir=tmp,
            nginx_pid=pid,
        )


def _start_node(
    deployment: Deployment, node_dir: Path, workers: int, threads: int
) -> tuple[Node, contextlib.ExitStack]:
    """One node's processes, and the stack that stops them."""
    with contextlib.ExitStack() as stack:
        registry = stack.enter_context(
            serving(deployment, node_dir, workers=workers, threads=threads, access_log=True)
        )
        node = Node(
            name=node_dir.name,
            registry=registry,
            scrubber=stack.enter_context(running_scrubber(registry)),
            worker=stack.enter_context(running_worker(registry, interval="1")),
        )
        return node, stack.pop_all()


@contextlib.contextmanager
def _running_nginx(nginx: str, folder: Path, port: int, nodes: list[Node]) -> Iterator[int]:
    """nginx on 127.0.0.1:port in front of the nodes; yields its master's pid."""
    folder.mkdir(parents=True)
    site = render_site(
        REGISTRY_LISTEN=f"127.0.0.1:{port}",
        REGISTRY_SERVER_NAME="localhost",
        REGISTRY_ACCESS_LOG=str(folder / "access.log"),
        REGISTRY_UPSTREAMS=" ".join(f"server {node.address};" for node in nodes),
    )
    (folder / "glance-registry.conf").write_text(site)
    # As root, nginx's workers would switch to nobody, who may not write here.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    conf = folder / "nginx.conf"
    conf.write_text(MAIN_CONF.format(dir=folder, user=user))
    command = [nginx, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")]
    with open(folder / "stderr.log", "wb") as out:
        proc = subprocess.Popen(
            [*command, "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_balancing(f"http://127.0.0.1:{port}", proc, folder)
        yield proc.pid
    finally:
        stop(proc)


def _wait_until_balancing(url: str, proc: subprocess.Popen, folder: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (folder / "stderr.log").read_text() + (folder / "error.log").read_text()
            raise RuntimeError(f"nginx exited with {proc.returncode}:\n{log}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/versions", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nginx did not answer within 20 s:\n{(folder / 'error.log').read_text()}")


def main() -> None:
    """`python -m tests.cluster`: a cluster to try by hand, until Ctrl-C."""
    with (
        tempfile.TemporaryDirectory(prefix="cluster-") as tmp,
        running_cluster(Path(tmp)) as cluster,
    ):
        print(f"nginx at {cluster.url}; nodes {', '.join(n.address for n in cluster.nodes)}")
        print(f"tokens: {cluster.tokens}\nfolder: {tmp} (Ctrl-C stops it all)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
