"""A throwaway single-node Ceph cluster on loopback: one monitor, one manager, one OSD
on `memstore` (in RAM, capped) and the RADOS Gateway, all under one short temporary
folder, each daemon a child process of ours stopped by its PID. The one start-up the tests
(tests/test_rbd.py, the radosgw S3 suite, the cluster suite), `make soak` and
`make bench` share.

Debian's packages (`ceph-mon ceph-osd ceph-mgr radosgw ceph-common python3-rados
python3-rbd`, installed by .ci/setup-test-deps.sh) and no cephx: every daemon and
client runs with `auth ... required = none`, which is what lets it start in a few
seconds with no keyrings to hand around.

    with running_ceph() as ceph:
        ceph.conf        # the ceph.conf to give IMAGES_RBD_CEPH_CONF
        ceph.pool        # an RBD pool, "images"
        ceph.s3_endpoint, ceph.s3_access_key, ceph.s3_secret_key

`python -m tests.ceph` starts one and waits (Ctrl-C stops it), for trying things by hand.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.live import free_port, stop

DAEMONS = ("/usr/bin/ceph-mon", "/usr/bin/ceph-mgr", "/usr/bin/ceph-osd", "/usr/bin/radosgw")
# The Debian packages whose absence `missing()` names.
PACKAGES = "ceph-mon ceph-osd ceph-mgr radosgw ceph-common python3-rados python3-rbd"
POOL = "images"
RGW = "client.rgw.test"
S3_ACCESS_KEY = "registry-test"
S3_SECRET_KEY = "registry-test-secret"  # a throwaway cluster's, on loopback
# The OSD keeps its objects in RAM: enough for the tests' and benchmarks' gigabyte.
MEMSTORE_BYTES = int(os.environ.get("CEPH_MEMSTORE_BYTES", 3 * 1024**3))

CONF = """\
[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
public network = 127.0.0.0/8
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
paxos propose interval = 0.1
# A client that died (a node SIGKILLed in a test) keeps its watch on an RBD image, and
# the image cannot be removed, for this long: 30 s by default, 5 here.
osd client watch timeout = 5
run dir = {dir}/run
log file = {dir}/log/$name.log
pid file = {dir}/run/$name.pid
admin socket = {dir}/run/$name.asok
mon data = {dir}/mon/$name
mgr data = {dir}/mgr/$name
osd data = {dir}/osd/$name
keyring = {dir}/keyring
mgr initial modules =
debug ms = 0

[client]
# Many client processes (the registry's workers, the rbd tool) at once: no admin
# socket to fight over, and their complaints in the log, not on a test's stderr.
admin socket =
log file = {dir}/log/clients.log
err to stderr = false
log to stderr = false

[{rgw}]
admin socket = {dir}/run/$name.asok
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {dir}/rgw
auth client required = none
ms mon client mode = crc
rgw gc obj min wait = 2
rgw gc processor period = 2
rgw gc processor max time = 2
rgw enable usage log = false
"""


@dataclass(frozen=True)
class Ceph:
    dir: Path
    conf: Path
    fsid: str
    pool: str
    s3_endpoint: str
    s3_access_key: str = S3_ACCESS_KEY
    s3_secret_key: str = S3_SECRET_KEY

    def run(self, *args: str, timeout: float = 60, attempts: int = 1) -> str:
        """A ceph command-line tool (`ceph`, `rbd`, `radosgw-admin`) on this cluster;
        `attempts` > 1 for the start-up's commands, which a monitor that has just
        formed its quorum refuses now and then ("problem getting command
        descriptions"), and which are all safe to repeat."""
        for attempt in range(attempts):
            done = subprocess.run(
                [args[0], "-c", str(self.conf), *args[1:]],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if not done.returncode:
                return done.stdout
            time.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")

    def pid(self, daemon: str) -> int:
        """A daemon's PID from its pid file ("osd.0", "mon.a"), to kill it in a test."""
        return int((self.dir / "run" / f"{daemon}.pid").read_text())

    @property
    def env(self) -> dict[str, str]:
        """The registry's settings for an RBD store on this cluster."""
        return {"IMAGES_RBD_POOL": self.pool, "IMAGES_RBD_CEPH_CONF": str(self.conf)}

    def pool_env(self, pool: str) -> dict[str, str]:
        """A new RBD pool, and the settings for a store in it: registries sharing a
        cluster each see only their own images (verify_store's orphans)."""
        self.run("ceph", "osd", "pool", "create", pool, "8", "8", attempts=3)
        self.run("rbd", "pool", "init", pool, attempts=3)
        return {**self.env, "IMAGES_RBD_POOL": pool}

    def s3_env(self, bucket: str) -> dict[str, str]:
        """The registry's settings for an S3 store on this cluster's radosgw."""
        return {
            "IMAGES_S3_BUCKET": bucket,
            "IMAGES_S3_ENDPOINT_URL": self.s3_endpoint,
            "IMAGES_S3_REGION": "us-east-1",
            "IMAGES_S3_ACCESS_KEY": self.s3_access_key,
            "IMAGES_S3_SECRET_KEY": self.s3_secret_key,
        }


def missing() -> str | None:
    """What this machine lacks to run a cluster, or None."""
    for daemon in DAEMONS:
        if not os.access(daemon, os.X_OK):
            return f"no {daemon} (apt-get install {PACKAGES})"
    try:
        import rados  # noqa: F401
        import rbd  # noqa: F401
    except ImportError:
        return "no rados/rbd modules in .venv (python3-rados python3-rbd; make test links them)"
    return None


@contextlib.contextmanager
def running_ceph(*, pool: str = POOL, rgw: bool = True) -> Iterator[Ceph]:
    # Short: admin sockets live here, and a unix socket's path has ~107 characters.
    folder = Path(tempfile.mkdtemp(prefix="ceph-", dir="/tmp"))
    daemons: list[subprocess.Popen] = []
    try:
        yield _start(folder, daemons, pool=pool, rgw=rgw)
    finally:
        _stop(daemons)
        shutil.rmtree(folder, ignore_errors=True)


def _start(folder: Path, daemons: list, *, pool: str, rgw: bool) -> Ceph:
    for sub in ("run", "log", "mon", "mgr", "osd", "rgw"):
        (folder / sub).mkdir()
    fsid = str(uuid.uuid4())
    mon_port, rgw_port = free_port(), free_port()
    conf = folder / "ceph.conf"
    conf.write_text(
        CONF.format(
            fsid=fsid,
            mon_port=mon_port,
            dir=folder,
            rgw=RGW,
            rgw_port=rgw_port,
            memstore_bytes=MEMSTORE_BYTES,
        )
    )
    ceph = Ceph(
        dir=folder, conf=conf, fsid=fsid, pool=pool, s3_endpoint=f"http://127.0.0.1:{rgw_port}"
    )
    c = ["-c", str(conf)]
    try:
        mon_addr = f"[v1:127.0.0.1:{mon_port}]"
        monmap = str(folder / "monmap")
        _run(
            ["monmaptool", *c, "--create", "--fsid", fsid, "--addv", "a", mon_addr, monmap], folder
        )
        _run(["ceph-mon", *c, "--mkfs", "-i", "a", "--monmap", monmap], folder)
        daemons.append(_daemon(["ceph-mon", *c, "-i", "a"], folder))
        daemons.append(_daemon(["ceph-mgr", *c, "-i", "x"], folder))
        osd_uuid = str(uuid.uuid4())
        osd_id = ceph.run("ceph", "osd", "new", osd_uuid, attempts=5).strip()
        (folder / "osd" / f"osd.{osd_id}").mkdir()
        _run(["ceph-osd", *c, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid], folder)
        osd = ["ceph-osd", *c, "-i", osd_id]
        daemons.append(_daemon(osd, folder))
        if not _osd_up(ceph, within=20):
            # Seen once in dozens of starts on a loaded machine: an OSD that stalls in
            # its start-up. A second start of the same (in-memory, empty) OSD boots.
            _stop([daemons.pop()])
            daemons.append(_daemon(osd, folder))
            if not _osd_up(ceph, within=30):
                raise RuntimeError("the OSD did not come up")
        ceph.run("ceph", "osd", "pool", "create", pool, "16", "16", attempts=5)
        ceph.run("rbd", "pool", "init", pool, attempts=3)
        if rgw:
            daemons.append(_daemon(["radosgw", *c, "-n", RGW], folder))
            _wait_for_rgw(ceph)
            ceph.run("radosgw-admin", "user", "create", "--uid", "registry",
                     "--display-name", "registry", "--access-key", S3_ACCESS_KEY,
                     "--secret-key", S3_SECRET_KEY, attempts=3)  # fmt: skip
    except BaseException as exc:
        _stop(daemons)
        logs = "\n".join(
            f"--- {log.name}\n{log.read_text()[-3000:]}" for log in (folder / "log").glob("*.log")
        )
        raise RuntimeError(f"Ceph did not start in {folder}: {exc}\n{logs}") from None
    return ceph


def _osd_up(ceph: Ceph, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        stat = ceph.run("ceph", "osd", "stat", "--format", "json", attempts=5)
        if json.loads(stat)["num_up_osds"]:
            return True
        time.sleep(0.2)
    return False


def _run(command: list[str], folder: Path) -> None:
    with open(folder / "log" / "start.out", "a+") as out:
        start = out.tell()
        done = subprocess.run(command, stdout=out, stderr=out, timeout=60)
        if done.returncode:
            out.seek(start)
            raise RuntimeError(f"{' '.join(command)}: {out.read().strip()}")


def _daemon(command: list[str], folder: Path) -> subprocess.Popen:
    """A daemon in the foreground (-f) as a child of ours: a forking ceph-osd waits
    for its boot before the parent exits, and radosgw in the foreground writes no pid
    file. So the child's PID is the daemon's, and stopping it also reaps it."""
    with open(folder / "log" / "daemons.out", "ab") as out:
        return subprocess.Popen([*command, "-f"], stdout=out, stderr=out, start_new_session=True)


def _wait_for_rgw(ceph: Ceph) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(ceph.s3_endpoint, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers: anonymous requests get 4xx
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("radosgw did not answer within 60 s") from None
            time.sleep(0.1)


def _stop(daemons: list[subprocess.Popen]) -> None:
    """radosgw first, the monitor last (the reverse of their start), each by its PID."""
    for proc in reversed(daemons):
        stop(proc)


def main() -> int:
    if reason := missing():
        print(f"ceph: {reason}")
        return 1
    started = time.monotonic()
    with running_ceph() as ceph:
        print(f"Ceph {ceph.fsid} up in {time.monotonic() - started:.1f} s: conf {ceph.conf}")
        print(
            f"RBD pool {ceph.pool}; S3 {ceph.s3_endpoint} {ceph.s3_access_key} {ceph.s3_secret_key}"
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
