"""Interoperable import through a real `db_worker`: web-download of the raw file from a
web server on loopback, glance-direct (stage, then import), and a web-download of the
same data as qcow2 converted to raw on the way (IMAGES_IMPORT_CONVERT_TO). Each
figure is the image's bytes over the time from the request to `active`, beside a
plain curl upload of the same file in the upload section."""

import functools
import http.server
import json
import subprocess
import threading
import time
from pathlib import Path

from benchmarks.common import MiB, Target
from benchmarks.report import Results, log
from benchmarks.upload import curl_upload, drop_stored
from tests.live import Registry, running_worker

# What the bench's registry needs for these (run.py's SERVER_ENV): loopback as the
# web server, any port, and conversion to raw.
IMPORT_ENV = {
    "IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS": "127.0.0.1",
    "IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS": "",
    "IMAGES_IMPORT_CONVERT_TO": "raw",
}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _until_active(target: Target, image_id: str, seconds: float = 1800) -> None:
    api = target.api()
    deadline = time.monotonic() + seconds
    while True:
        _, _, data = api.request("GET", f"/v2/images/{image_id}")
        image = json.loads(data)
        if image["status"] == "active":
            return
        if image["status"] not in ("importing", "uploading") or time.monotonic() > deadline:
            raise RuntimeError(f"import of {image_id} ended {image['status']}: {image}")
        time.sleep(0.05)


def _stage(target: Target, image_id: str, path: Path) -> None:
    headers = []
    for header in [*target.curl_headers, "Content-Type: application/octet-stream"]:
        headers += ["-H", header]
    url = f"{target.url}/v2/images/{image_id}/stage"
    cmd = ["curl", "-sS", "-X", "PUT", *headers, "-T", str(path), "-o", "/dev/null"]
    code = subprocess.run([*cmd, "-w", "%{http_code}", url], check=True, capture_output=True)
    if code.stdout != b"204":
        raise RuntimeError(f"stage answered {code.stdout!r}")


def _import(target: Target, image_id: str, method: dict) -> None:
    status, _, data = target.api().request(
        "POST", f"/v2/images/{image_id}/import", {"method": method}
    )
    if status != 202:
        raise RuntimeError(f"import answered {status}: {data[:300]!r}")


def measure_imports(res: Results, registry: Registry, target: Target, files, repeat, tmp):
    label = max(files, key=lambda k: files[k].stat().st_size)
    path = files[label]
    mib = path.stat().st_size / MiB
    qcow2 = tmp / f"{path.name}.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(path), str(qcow2)], check=True
    )
    server, base = _serve(path.parent)
    api = target.api()
    rates: dict[str, list[float]] = {"web": [], "direct": [], "convert": [], "upload": []}
    try:
        with running_worker(registry, log_name="bench-worker.log"):
            for i in range(repeat):
                image_id = api.create_image(f"web-{i}")
                started = time.perf_counter()
                _import(target, image_id, {"name": "web-download", "uri": f"{base}/{path.name}"})
                _until_active(target, image_id)
                rates["web"].append(mib / (time.perf_counter() - started))
                drop_stored(target, image_id)

                image_id = api.create_image(f"direct-{i}")
                started = time.perf_counter()
                _stage(target, image_id, path)
                _import(target, image_id, {"name": "glance-direct"})
                _until_active(target, image_id)
                rates["direct"].append(mib / (time.perf_counter() - started))
                drop_stored(target, image_id)

                image_id = api.create_image(f"convert-{i}", disk_format="qcow2")
                started = time.perf_counter()
                _import(target, image_id, {"name": "web-download", "uri": f"{base}/{qcow2.name}"})
                _until_active(target, image_id)
                rates["convert"].append(mib / (time.perf_counter() - started))
                drop_stored(target, image_id)

                image_id = api.create_image(f"upload-{i}")
                rates["upload"].append(mib / curl_upload(target, image_id, path))
                drop_stored(target, image_id)
    finally:
        server.shutdown()
        qcow2.unlink(missing_ok=True)
    res.add("import", f"plain upload, curl {label} (same run)", "MiB/s", rates["upload"])
    res.add("import", f"web-download {label}, request to active", "MiB/s", rates["web"])
    res.add("import", f"glance-direct {label}, stage + import", "MiB/s", rates["direct"])
    res.add("import", f"web-download {label} qcow2, converted to raw", "MiB/s", rates["convert"])
    best = {name: max(values) for name, values in rates.items()}
    log(
        f"import: upload {best['upload']:.0f}, web-download {best['web']:.0f}, "
        f"glance-direct {best['direct']:.0f}, qcow2->raw {best['convert']:.0f} MiB/s (best)"
    )
