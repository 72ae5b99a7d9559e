"""A throwaway RabbitMQ on loopback for the notification tests (tests/rabbitmq_mode):
Debian's `rabbitmq-server`, run as a child process of ours with its own node name,
free ports (AMQP, epmd, Erlang distribution) and everything it writes (database,
logs, config, the Erlang cookie under HOME) in one temporary folder; no plugins.

The real server script is run, not Debian's /usr/sbin wrapper (it would `su` to the
rabbitmq user). Its epmd is started first, in the foreground, as a child too, so
that both are stopped by their PIDs and nothing is left running.

    with running_rabbitmq() as rabbit:
        rabbit.url          # rabbit://guest:guest@127.0.0.1:PORT/
        rabbit.stop()       # the broker goes away (a bus outage)
        rabbit.start()      # and comes back, on the same port

`python -m tests.rabbitmq` starts one and waits (Ctrl-C stops it), for trying things
by hand.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.live import free_port, stop

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
EPMD_CANDIDATES = ("/usr/bin/epmd", "/usr/lib/erlang/bin/epmd")
PACKAGE = "rabbitmq-server"
START_SECONDS = 90

CONFIG = """\
listeners.tcp.default = 127.0.0.1:{port}
loopback_users.guest = true
log.file.level = info
"""


def missing() -> str | None:
    """Why a RabbitMQ cannot be started here, or None."""
    if not SERVER.exists():
        return f"no RabbitMQ server ({SERVER}; apt-get install {PACKAGE}, as root)"
    if _epmd() is None:
        return f"no epmd (apt-get install {PACKAGE}, as root)"
    return None


def _epmd() -> str | None:
    return next((path for path in EPMD_CANDIDATES if os.access(path, os.X_OK)), None)


class RabbitMQ:
    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.epmd_port = free_port()
        self.dist_port = free_port()
        self.node = f"rabbit-test-{uuid.uuid4().hex[:8]}@localhost"
        self.epmd: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        (folder / "home").mkdir(parents=True, exist_ok=True)
        (folder / "rabbitmq.conf").write_text(CONFIG.format(port=self.port))
        (folder / "enabled_plugins").write_text("[].\n")
        (folder / "rabbitmq-env.conf").write_text("")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder / "home"),  # the Erlang cookie is made there
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),  # + ".conf"
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(folder / "rabbitmq.pid"),
        }

    @property
    def url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.port}/"

    @property
    def log(self) -> Path:
        return self.folder / "server.out"

    def start(self) -> None:
        """Start the broker (again, on the same port and data) and wait until it
        accepts AMQP connections."""
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                [_epmd(), "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        with open(self.log, "ab") as out:
            self.server = subprocess.Popen(
                [str(SERVER)],
                env=self.env,
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C of the tests is ours to pass on
            )
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"RabbitMQ exited: {self.log.read_text()[-3000:]}")
            if _amqp_answers(self.port):
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            f"RabbitMQ did not accept AMQP within {START_SECONDS} s: {self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        """Stop the broker by its PID (the script execs the Erlang VM, so that is the
        node itself); epmd stays, for a start() again."""
        if self.server is not None:
            stop(self.server)
            self.server = None

    def close(self) -> None:
        self.stop()
        if self.epmd is not None:
            stop(self.epmd)
            self.epmd = None


def _amqp_answers(port: int) -> bool:
    """True when the broker answers an AMQP 0-9-1 protocol header with its
    Connection.Start frame (method frame, type 1), not merely accepts TCP."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(1) == b"\x01"
    except OSError:
        return False


@contextlib.contextmanager
def running_rabbitmq() -> Iterator[RabbitMQ]:
    folder = Path(tempfile.mkdtemp(prefix="rabbitmq-"))
    rabbit = RabbitMQ(folder)
    try:
        rabbit.start()
        yield rabbit
    finally:
        rabbit.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    problem = missing()
    if problem:
        print(problem)
        return 1
    with running_rabbitmq() as rabbit:
        print(f"RabbitMQ node {rabbit.node} at {rabbit.url} (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
