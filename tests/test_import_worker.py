"""Interoperable import against the real server and real `manage.py db_worker`
processes: over HTTP, with openstacksdk and the openstack CLI, a worker SIGKILLed
in the middle of an import, and two workers sharing one queue."""

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import openstack
import pytest
import requests

from tests.live import running_registry, running_worker

pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings._RemovedInSDKWarning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

STALE_SECONDS = 3
SLOW_CHUNK = 64 * 1024


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves `files` by path; /slow/<name> trickles it (a chunk every 50 ms)."""

    files: dict[str, bytes] = {}

    def do_GET(self):
        slow = self.path.startswith("/slow/")
        data = self.files.get(self.path.removeprefix("/slow"))
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for start in range(0, len(data), SLOW_CHUNK if slow else len(data) or 1):
                self.wfile.write(data[start : start + (SLOW_CHUNK if slow else len(data))])
                if slow:
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def web():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Files.files
    server.shutdown()


@pytest.fixture(scope="module")
def importer(tmp_path_factory, web):
    """A registry that may download from loopback (the test's web server) and
    counts a silent import as abandoned after STALE_SECONDS."""
    port = web[0].rsplit(":", 1)[1]
    env = {
        "IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS": "127.0.0.1",
        "IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS": f"80,443,{port}",
        "IMAGES_IMPORT_STALE_SECONDS": str(STALE_SECONDS),
    }
    with running_registry(tmp_path_factory.mktemp("importer"), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def worker(importer):
    with running_worker(importer) as proc:
        yield proc


def _headers(registry, user="alice") -> dict:
    return {"X-Auth-Token": registry.tokens[user]}


def _create(registry, name: str, disk_format="raw") -> str:
    body = {"name": name, "disk_format": disk_format, "container_format": "bare"}
    response = requests.post(f"{registry.url}/v2/images", json=body, headers=_headers(registry))
    response.raise_for_status()
    return response.json()["id"]


def _image(registry, image_id) -> dict:
    return requests.get(f"{registry.url}/v2/images/{image_id}", headers=_headers(registry)).json()


def _wait_while(registry, image_id, status: str, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while (image := _image(registry, image_id))["status"] == status:
        assert time.monotonic() < deadline, f"image {image_id} still {status}"
        time.sleep(0.2)
    return image


def _download(registry, image_id) -> bytes:
    response = requests.get(f"{registry.url}/v2/images/{image_id}/file", headers=_headers(registry))
    response.raise_for_status()
    return response.content


def _import(registry, image_id, method: str, **extra) -> requests.Response:
    return requests.post(
        f"{registry.url}/v2/images/{image_id}/import",
        json={"method": {"name": method, **extra}},
        headers=_headers(registry),
    )


def test_import_worker_glance_direct_over_http(importer, worker, payload):
    image_id = _create(importer, "staged")
    staged = requests.put(
        f"{importer.url}/v2/images/{image_id}/stage",
        data=payload,
        headers={**_headers(importer), "Content-Type": "application/octet-stream"},
    )
    assert staged.status_code == 204

    assert _import(importer, image_id, "glance-direct").status_code == 202
    image = _wait_while(importer, image_id, "importing")

    assert image["status"] == "active"
    assert image["os_hash_value"] == hashlib.sha512(payload).hexdigest()
    assert _download(importer, image_id) == payload
    tasks = requests.get(
        f"{importer.url}/v2/images/{image_id}/tasks", headers=_headers(importer)
    ).json()["tasks"]
    assert [task["status"] for task in tasks] == ["success"]


def test_import_worker_web_download_over_http(importer, worker, web, payload):
    base, files = web
    files["/web.raw"] = payload
    image_id = _create(importer, "from the web")

    assert _import(importer, image_id, "web-download", uri=f"{base}/web.raw").status_code == 202
    image = _wait_while(importer, image_id, "importing")

    assert image["status"] == "active"
    assert image["size"] == len(payload)
    assert _download(importer, image_id) == payload


def test_import_worker_web_download_refused_content_fails_the_task(importer, worker, web, payload):
    base, files = web
    files["/not-qcow2.img"] = payload  # raw bytes for a qcow2 image
    image_id = _create(importer, "mismatch", disk_format="qcow2")

    assert (
        _import(importer, image_id, "web-download", uri=f"{base}/not-qcow2.img").status_code == 202
    )
    image = _wait_while(importer, image_id, "importing")

    assert image["status"] == "queued"
    assert image["os_glance_failed_import"] == "default"
    assert "os_glance_import_task" not in image
    task = requests.get(
        f"{importer.url}/v2/images/{image_id}/tasks", headers=_headers(importer)
    ).json()["tasks"][0]
    assert task["status"] == "failure"
    assert "qcow2" in task["message"]
    assert not list(importer.store.glob(f"{image_id}*"))


def _sdk(registry):
    return openstack.connect(
        auth_type="admin_token",
        auth={"endpoint": f"{registry.url}/v2", "token": registry.tokens["alice"]},
        load_yaml_config=False,
        load_envvars=False,
    )


def test_import_worker_openstacksdk_use_import_and_web_download(
    importer, worker, web, payload_file
):
    path, data = payload_file()
    base, files = web
    files["/sdk.raw"] = data
    conn = _sdk(importer)
    try:
        staged = conn.image.create_image(
            "sdk-import",
            filename=str(path),
            disk_format="raw",
            container_format="bare",
            use_import=True,
            allow_duplicates=True,
        )
        image = _wait_while(importer, staged.id, "importing")
        assert image["status"] == "active"
        assert _download(importer, staged.id) == data

        web_image = conn.image.create_image(
            "sdk-web", disk_format="raw", container_format="bare", allow_duplicates=True
        )
        conn.image.import_image(web_image, method="web-download", uri=f"{base}/sdk.raw")
        assert _wait_while(importer, web_image.id, "queued", seconds=5)["status"] in (
            "importing",
            "active",
        )
        assert _wait_while(importer, web_image.id, "importing")["status"] == "active"
        assert _download(importer, web_image.id) == data
    finally:
        conn.close()


def _openstack(registry, *args: str) -> dict:
    """The openstack CLI with our token, the image endpoint given (no catalog here)."""
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "openstack"),
            "--os-auth-type",
            "admin_token",
            "--os-endpoint",
            f"{registry.url}/v2",
            "--os-token",
            registry.tokens["alice"],
            "--os-image-api-version",
            "2",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("OS_")},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_import_worker_openstack_cli_stages_and_web_downloads(importer, worker, web, payload_file):
    path, data = payload_file()
    base, files = web
    files["/cli.raw"] = data
    formats = ["--disk-format", "raw", "--container-format", "bare", "-f", "json"]

    # --import with a file: stage, then a glance-direct import.
    staged = _openstack(importer, "image", "create", *formats, "--import", "--file", str(path), "s")
    # Imported from a URL; --wait polls until it is active. (Created over HTTP: the
    # CLI's `image create` without --file uploads its standard input, and here that is
    # no terminal but an empty pipe.)
    web_image = {"id": _create(importer, "w")}
    _openstack(
        importer,
        "image",
        "import",
        web_image["id"],
        "--method",
        "web-download",
        "--uri",
        f"{base}/cli.raw",
        "--wait",
        "-f",
        "json",
    )

    for image_id in (staged["id"], web_image["id"]):
        assert _wait_while(importer, image_id, "importing")["status"] == "active"
        assert _download(importer, image_id) == data


def test_import_worker_killed_mid_import_requeues_the_image_then_a_retry_works(
    importer, web, payload
):
    base, files = web
    files["/big.raw"] = payload * 4  # trickled: about 10 s at 64 KiB per 50 ms
    image_id = _create(importer, "killed")
    with running_worker(importer, log_name="killed-worker.log") as doomed:
        assert (
            _import(importer, image_id, "web-download", uri=f"{base}/slow/big.raw").status_code
            == 202
        )
        deadline = time.monotonic() + 30
        while not list(importer.store.glob(f"{image_id}*.partial")):
            assert time.monotonic() < deadline, "the worker never started writing"
            time.sleep(0.1)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    assert _image(importer, image_id)["status"] == "importing"  # nobody knows yet

    time.sleep(STALE_SECONDS + 1)
    scrub = subprocess.run(
        [sys.executable, "manage.py", "scrub_images"],
        cwd=Path(__file__).resolve().parents[1],
        env=importer.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert scrub.returncode == 0, scrub.stderr
    assert "undid abandoned imports 1" in scrub.stdout

    image = _image(importer, image_id)
    assert image["status"] == "queued"
    assert image["os_glance_failed_import"] == "default"
    assert "os_glance_import_task" not in image
    assert not list(importer.store.glob(f"{image_id}*"))

    with running_worker(importer, log_name="retry-worker.log"):
        assert _import(importer, image_id, "web-download", uri=f"{base}/big.raw").status_code == 202
        image = _wait_while(importer, image_id, "importing")
    assert image["status"] == "active"
    assert "os_glance_failed_import" not in image
    assert _download(importer, image_id) == payload * 4


def test_import_two_workers_run_each_import_exactly_once(tmp_path, payload):
    with running_registry(tmp_path) as registry:
        images = []
        for i in range(8):
            image_id = _create(registry, f"twice-{i}")
            requests.put(
                f"{registry.url}/v2/images/{image_id}/stage",
                data=payload[: 1024 * (i + 1)],
                headers={**_headers(registry), "Content-Type": "application/octet-stream"},
            ).raise_for_status()
            images.append(image_id)
        with (
            running_worker(registry, log_name="w1.log"),
            running_worker(registry, log_name="w2.log"),
        ):
            for image_id in images:
                assert _import(registry, image_id, "glance-direct").status_code == 202
            for image_id in images:
                assert _wait_while(registry, image_id, "importing")["status"] == "active"
        counts = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                "from django_tasks_db.models import DBTaskResult;"
                "from images.models import ImageTransition;"
                "print(sorted(len(r.worker_ids) for r in DBTaskResult.objects.all()));"
                "print(ImageTransition.objects.filter(target='active',"
                " operation='import').count())",
            ],
            cwd=Path(__file__).resolve().parents[1],
            env=registry.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        claims, activations = counts.stdout.split("\n")[-3:-1]
        assert json.loads(claims) == [1] * 8, counts.stdout  # each job claimed by one worker, once
        assert int(activations) == 8
