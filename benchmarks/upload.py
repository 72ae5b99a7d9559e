"""The machine's limits (hashing, reading a file) and uploads through the API: curl
and glanceclient, one at a time and ten at once, with the server's memory growth."""

import hashlib
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import (
    USER,
    MiB,
    RssPeak,
    make_file,
    profile_start,
    profile_top,
    timed,
)
from benchmarks.report import Results
from tests.live import Registry


def python_one_pass(path: Path) -> float:
    md5, sha = hashlib.md5(), hashlib.sha512()
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(MiB):
            md5.update(chunk)
            sha.update(chunk)
    return time.perf_counter() - started


def python_two_threads(path: Path) -> float:
    """md5 and sha512 on their own threads, the file read on the caller's: the
    ceiling of the store's hashing design on this machine."""
    md5, sha = hashlib.md5(), hashlib.sha512()
    pending = None
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool, open(path, "rb", buffering=0) as f:
        while chunk := f.read(MiB):
            if pending:
                for p in pending:
                    p.result()
            pending = (pool.submit(md5.update, chunk), pool.submit(sha.update, chunk))
        for p in pending or ():
            p.result()
    return time.perf_counter() - started


def measure_limits(res: Results, files: dict[str, Path], repeat: int) -> None:
    for label, path in files.items():
        mib = path.stat().st_size / MiB
        for name, run in (
            ("md5sum", lambda p=path: timed(["md5sum", str(p)])),
            ("sha512sum", lambda p=path: timed(["sha512sum", str(p)])),
            ("python md5+sha512 one pass", lambda p=path: python_one_pass(p)),
            ("python md5 | sha512 on two threads", lambda p=path: python_two_threads(p)),
            ("cat > /dev/null", lambda p=path: timed(["cat", str(p)])),
        ):
            res.add("limits", f"{name} {label}", "MiB/s", [mib / run() for _ in range(repeat)])


def curl_upload(port: int, token: str, image_id: str, path: Path) -> float:
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "PUT",
            "-H",
            f"X-Auth-Token: {token}",
            "-H",
            "Content-Type: application/octet-stream",
            "-T",
            str(path),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
            f"http://127.0.0.1:{port}/v2/images/{image_id}/file",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    if out[0] != "204":
        raise RuntimeError(f"curl upload answered {out[0]}")
    return float(out[1])


def glanceclient_upload(port: int, token: str, image_id: str, path: Path) -> float:
    from glanceclient import Client

    client = Client("2", endpoint=f"http://127.0.0.1:{port}", token=token)
    with open(path, "rb") as data:
        started = time.perf_counter()
        client.images.upload(image_id, data, image_size=path.stat().st_size)
        return time.perf_counter() - started


def drop_stored(registry: Registry, image_id: str) -> None:
    """Keep the scratch disk small: the bytes of a measured upload are not needed again."""
    (registry.store / image_id).unlink(missing_ok=True)


def measure_upload(res, registry: Registry, api, files, repeat, profile, tmp) -> None:
    token, port = registry.tokens[USER], registry.port
    big = max(files, key=lambda k: files[k].stat().st_size)
    # Warm up both workers (imports, thread stacks, DB connections) so that the RSS
    # growth measured below is the upload's own.
    warm = tmp / "warm.bin"
    make_file(warm, 8 * MiB)
    for n in range(4):
        image_id = api.create_image(f"warm-{n}")
        curl_upload(port, token, image_id, warm)
        drop_stored(registry, image_id)
    for label, path in files.items():
        mib = path.stat().st_size / MiB
        for client, upload in (("curl", curl_upload), ("glanceclient", glanceclient_upload)):
            rates, growth = [], []
            for i in range(repeat):
                image_id = api.create_image(f"upload-{client}-{label}-{i}")
                os.sync()
                spy = None
                if profile and client == "curl" and label == big and i == 0:
                    spy_out = tmp / "profile-upload.txt"
                    spy = profile_start(registry, spy_out, 8)
                    time.sleep(1)
                with RssPeak(registry) as rss:
                    seconds = upload(port, token, image_id, path)
                if spy is not None:
                    res.facts[f"profile_upload_{big}_curl"] = profile_top(spy, spy_out)
                rates.append(mib / seconds)
                growth.append(rss.growth_mib)
                drop_stored(registry, image_id)
            res.add("upload", f"{client} {label}", "MiB/s", rates)
            res.add("upload", f"{client} {label} server RSS growth", "MiB", growth)

    # Ten uploads at once, with Content-Length, of the smaller file.
    path = files[min(files, key=lambda k: files[k].stat().st_size)]
    label = next(k for k, v in files.items() if v == path)
    rates, growth = [], []
    for i in range(max(2, repeat - 1)):
        ids = [api.create_image(f"parallel-{i}-{n}") for n in range(10)]
        os.sync()
        with RssPeak(registry) as rss, ThreadPoolExecutor(10) as pool:
            started = time.perf_counter()
            list(pool.map(lambda x: curl_upload(port, token, x, path), ids))
            wall = time.perf_counter() - started
        rates.append(10 * path.stat().st_size / MiB / wall)
        growth.append(rss.growth_mib / 10)
        for image_id in ids:
            drop_stored(registry, image_id)
    res.add("upload", f"10 parallel curl {label}, aggregate", "MiB/s", rates)
    res.add("upload", f"10 parallel curl {label} RSS growth per upload", "MiB", growth)


def measure_inspection(res, registry: Registry, api, files, repeat, tmp) -> None:
    """The same qcow2 bytes uploaded inspected (bare) and not (ova: Glance inspects
    only bare containers): what format inspection costs an upload."""
    if shutil.which("qemu-img") is None:
        res.skip("upload with and without inspection: no qemu-img (apt-get install qemu-utils)")
        return
    token, port = registry.tokens[USER], registry.port
    big = max(files, key=lambda k: files[k].stat().st_size)
    qcow2 = tmp / f"random-{big}.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(files[big]), str(qcow2)], check=True)
    mib = qcow2.stat().st_size / MiB
    for label, container in (("inspected", "bare"), ("not inspected", "ova")):
        rates = []
        for i in range(repeat):
            image_id = api.create_image(f"inspect-{container}-{i}", "qcow2", container)
            os.sync()
            rates.append(mib / curl_upload(port, token, image_id, qcow2))
            drop_stored(registry, image_id)
        res.add("upload", f"curl {big} qcow2, {label}", "MiB/s", rates)
    qcow2.unlink()


def upload_budgets(res: Results, files: dict[str, Path]) -> None:
    big = max(files, key=lambda k: files[k].stat().st_size)
    small = min(files, key=lambda k: files[k].stat().st_size)
    one_pass = res.get("limits", f"python md5+sha512 one pass {big}")
    up = res.get("upload", f"curl {big}")
    if one_pass and up:
        ratio = up["median"] / one_pass["median"]
        res.budget(f"upload curl {big}: MiB/s / Python one-pass hashing", ratio, 0.9, ratio >= 0.9)
    for name in (f"curl {big} server RSS growth", f"glanceclient {big} server RSS growth"):
        row = res.get("upload", name)
        if row:
            res.budget(f"upload {name} (max), MiB", row["max"], 32.0, row["max"] <= 32)
    row = res.get("upload", f"10 parallel curl {small} RSS growth per upload")
    if row:
        res.budget(
            f"upload 10 x {small}: RSS growth per upload (max), MiB",
            row["max"],
            32.0,
            row["max"] <= 32,
        )
