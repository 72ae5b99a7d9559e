"""The machine's limits (hashing, copying, reading a file) and uploads through the API:
curl and glanceclient, one at a time and ten at once, with the server's memory growth
and the CPU seconds its whole process tree spent per GiB received, beside what
Python's hashlib spends on md5 + sha512 over the same bytes."""

import hashlib
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import (
    MiB,
    RssPeak,
    Target,
    make_file,
    profile_start,
    profile_top,
    timed,
)
from benchmarks.report import Results


def python_one_pass(path: Path) -> tuple[float, float]:
    """md5 and sha512 over the file in one pass, as an upload must: (wall seconds, CPU
    seconds of this process, reads included)."""
    md5, sha = hashlib.md5(), hashlib.sha512()
    started, cpu = time.perf_counter(), time.process_time()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(MiB):
            md5.update(chunk)
            sha.update(chunk)
    return time.perf_counter() - started, time.process_time() - cpu


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


def timed_cp(path: Path) -> float:
    copy = path.with_name(path.name + ".cp")
    try:
        return timed(["cp", str(path), str(copy)])
    finally:
        copy.unlink(missing_ok=True)


ONE_PASS = "python md5+sha512 one pass {}"
ONE_PASS_CPU = "python md5+sha512 one pass {} CPU"


def measure_limits(res: Results, files: dict[str, Path], repeat: int) -> None:
    for label, path in files.items():
        mib = path.stat().st_size / MiB
        one_pass = [python_one_pass(path) for _ in range(repeat)]
        rates, cpu = [mib / w for w, _ in one_pass], [c * 1024 / mib for _, c in one_pass]
        res.add("limits", ONE_PASS.format(label), "MiB/s", rates, "machine")
        res.add("limits", ONE_PASS_CPU.format(label), "CPU-s/GiB", cpu, "machine")
        for name, run in (
            ("md5sum", lambda p=path: timed(["md5sum", str(p)])),
            ("sha512sum", lambda p=path: timed(["sha512sum", str(p)])),
            ("python md5 | sha512 on two threads", lambda p=path: python_two_threads(p)),
            ("cp (same filesystem)", lambda p=path: timed_cp(p)),
            ("cat > /dev/null", lambda p=path: timed(["cat", str(p)])),
        ):
            rates = [mib / run() for _ in range(repeat)]
            res.add("limits", f"{name} {label}", "MiB/s", rates, "machine")


def curl_upload(target: Target, image_id: str, path: Path) -> float:
    headers = []
    for h in [*target.curl_headers, "Content-Type: application/octet-stream"]:
        headers += ["-H", h]
    cmd = ["curl", "-sS", "-X", "PUT", *headers, "-T", str(path), "-o", "/dev/null"]
    cmd += ["-w", "%{http_code} %{time_total}", f"{target.url}/v2/images/{image_id}/file"]
    out = subprocess.run(
        cmd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    if out[0] != "204":
        raise RuntimeError(f"curl upload to {target.name} answered {out[0]}")
    return float(out[1])


def glanceclient_upload(target: Target, image_id: str, path: Path) -> float:
    """glanceclient streams the file with Transfer-Encoding: chunked (1 MiB chunks)."""
    from glanceclient import Client

    client = Client("2", endpoint=target.url, token=target.token or "unused")
    with open(path, "rb") as data:
        started = time.perf_counter()
        client.images.upload(image_id, data, image_size=path.stat().st_size)
        return time.perf_counter() - started


def drop_stored(target: Target, image_id: str) -> None:
    """Keep the scratch disk small: the bytes of a measured upload are not needed again."""
    (target.store / image_id).unlink(missing_ok=True)


def _cpu_row(res, target, name, label, cpu_per_gib) -> None:
    res.add(
        "upload",
        f"{name} server CPU",
        "CPU-s/GiB",
        cpu_per_gib,
        target.name,
        limit=("limits", ONE_PASS_CPU.format(label)),
    )


def measure_upload(res, target: Target, files, repeat, profile, tmp) -> None:
    api = target.api()
    big = max(files, key=lambda k: files[k].stat().st_size)
    # Warm up both workers (imports, thread stacks, DB connections) so that the RSS
    # growth measured below is the upload's own.
    warm = tmp / "warm.bin"
    make_file(warm, 8 * MiB)
    for n in range(4):
        image_id = api.create_image(f"warm-{n}")
        curl_upload(target, image_id, warm)
        drop_stored(target, image_id)
    for label, path in files.items():
        mib = path.stat().st_size / MiB
        for client, upload in (("curl", curl_upload), ("glanceclient", glanceclient_upload)):
            rates, growth, cpu = [], [], []
            for i in range(repeat):
                image_id = api.create_image(f"upload-{client}-{label}-{i}")
                os.sync()
                spy = None
                first_big_curl = client == "curl" and label == big and i == 0
                if profile and first_big_curl and target.name == "registry":
                    spy_out = tmp / "profile-upload.txt"
                    spy = profile_start(target, spy_out, 8)
                    time.sleep(1)
                with RssPeak(target) as rss:
                    seconds = upload(target, image_id, path)
                if spy is not None:
                    res.facts[f"profile_upload_{big}_curl"] = profile_top(spy, spy_out)
                rates.append(mib / seconds)
                growth.append(rss.growth_mib)
                cpu.append(rss.cpu_seconds * 1024 / mib)
                drop_stored(target, image_id)
            name = f"{client} {label}"
            limit = ("limits", ONE_PASS.format(label))
            res.add("upload", name, "MiB/s", rates, target.name, limit=limit)
            res.add("upload", f"{name} server RSS growth", "MiB", growth, target.name)
            _cpu_row(res, target, name, label, cpu)

    # Ten uploads at once, with Content-Length, of the smaller file.
    path = files[min(files, key=lambda k: files[k].stat().st_size)]
    label = next(k for k, v in files.items() if v == path)
    tries = 5 if target.name == "glance" else 1
    rates, growth, cpu, failed = [], [], [], []
    for i in range(max(2, repeat - 1)):
        ids = [api.create_image(f"parallel-{i}-{n}") for n in range(10)]
        os.sync()
        with RssPeak(target) as rss, ThreadPoolExecutor(10) as pool:
            started = time.perf_counter()
            done = list(pool.map(lambda x: _upload_until_stored(target, x, path, tries), ids))
            wall = time.perf_counter() - started
        total_mib = 10 * path.stat().st_size / MiB
        rates.append(total_mib / wall)
        growth.append(rss.growth_mib / 10)
        cpu.append(rss.cpu_seconds * 1024 / total_mib)
        failed.append(sum(len(tried) - 1 for tried in done))
        for image_id in (image_id for tried in done for image_id in tried):
            drop_stored(target, image_id)
    name = f"10 parallel curl {label}"
    limit = ("limits", ONE_PASS.format(label))
    res.add("upload", f"{name}, aggregate", "MiB/s", rates, target.name, limit=limit)
    res.add("upload", f"{name} RSS growth per upload", "MiB", growth, target.name)
    _cpu_row(res, target, name, label, cpu)
    res.add("upload", f"{name}: failed, sent again", "uploads", failed, target.name)


def _upload_until_stored(target: Target, image_id: str, path: Path, tries: int) -> list[str]:
    """The ids of the images tried until one upload was stored. Glance on SQLite fails
    some concurrent uploads ("database is locked": oslo.db's deferred BEGIN, then a
    read-modify-write of the image row, which SQLite answers with SQLITE_BUSY at once
    when another worker has written meanwhile); a client would send those again, so
    the aggregate rate and CPU include the failed attempts. Ours gets one try."""
    tried = [image_id]
    while True:
        try:
            curl_upload(target, tried[-1], path)
            return tried
        except (RuntimeError, subprocess.CalledProcessError):
            if len(tried) >= tries:
                raise
            tried.append(target.api().create_image(f"{image_id}-again-{len(tried)}"))


def measure_inspection(res, target: Target, files, repeat, tmp) -> None:
    """The same qcow2 bytes uploaded inspected (bare) and not (ova: Glance inspects
    only bare containers): what format inspection costs an upload."""
    if shutil.which("qemu-img") is None:
        res.skip("upload with and without inspection: no qemu-img (apt-get install qemu-utils)")
        return
    api = target.api()
    big = max(files, key=lambda k: files[k].stat().st_size)
    qcow2 = tmp / f"random-{big}.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(files[big]), str(qcow2)], check=True)
    mib = qcow2.stat().st_size / MiB
    for label, container in (("inspected", "bare"), ("not inspected", "ova")):
        rates = []
        for i in range(repeat):
            image_id = api.create_image(f"inspect-{container}-{i}", "qcow2", container)
            os.sync()
            rates.append(mib / curl_upload(target, image_id, qcow2))
            drop_stored(target, image_id)
        res.add("upload", f"curl {big} qcow2, {label}", "MiB/s", rates)
    qcow2.unlink()


def upload_budgets(res: Results, files: dict[str, Path]) -> None:
    big = max(files, key=lambda k: files[k].stat().st_size)
    small = min(files, key=lambda k: files[k].stat().st_size)
    one_pass = res.median("limits", ONE_PASS.format(big), "machine")
    for client in ("curl", "glanceclient"):
        up = res.median("upload", f"{client} {big}")
        if one_pass and up:
            ratio = up / one_pass
            res.budget(
                f"upload {client} {big}: MiB/s / Python one-pass hashing",
                ratio,
                0.9,
                ratio >= 0.9,
                _glance_note(res, f"{client} {big}", up / ratio),
            )
    for name, label in (
        (f"curl {big}", big),
        (f"glanceclient {big}", big),
        (f"10 parallel curl {small}", small),
    ):
        ours = res.median("upload", f"{name} server CPU")
        hashing = res.median("limits", ONE_PASS_CPU.format(label), "machine")
        if ours and hashing:
            res.budget(
                f"upload {name}: server CPU / hashlib's",
                ours / hashing,
                1.3,
                ours <= 1.3 * hashing,
                _glance_note(res, f"{name} server CPU", hashing, "CPU-s/GiB"),
            )
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


def _glance_note(res: Results, name: str, limit: float, unit: str = "MiB/s") -> str:
    glance = res.median("upload", name, "glance")
    if glance is None:
        return ""
    return f"Glance: {glance:.2f} {unit}, {glance / limit:.2f} x the same limit"
