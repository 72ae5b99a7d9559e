"""Downloads, whole and ranged, beside nginx (Debian package, sendfile on) serving the
same stored file, and `cat` of that file."""

import shutil
import subprocess
import time

from benchmarks.common import USER, MiB, timed
from benchmarks.report import Results
from benchmarks.upload import curl_upload
from tests.live import Registry, free_port

NGINX_CONF = """
daemon off;
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def curl_download(url: str, headers: list[str], expect: str) -> tuple[float, int]:
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout.split()
    if out[0] != expect:
        raise RuntimeError(f"GET {url} answered {out[0]}, expected {expect}")
    return float(out[2]), int(out[1])


def measure_download(res: Results, registry: Registry, api, files, repeat, tmp) -> None:
    label = max(files, key=lambda k: files[k].stat().st_size)
    path = files[label]
    size = path.stat().st_size
    token = registry.tokens[USER]
    image_id = api.create_image(f"download-{label}")
    curl_upload(registry.port, token, image_id, path)
    stored = registry.store / image_id
    nginx = None
    nginx_port = free_port()
    if shutil.which("nginx"):
        nginx_dir = tmp / "nginx"
        nginx_dir.mkdir()
        conf = nginx_dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=nginx_dir, port=nginx_port, root=registry.store))
        nginx = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(nginx_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
    else:
        res.skip("download beside nginx: nginx is not installed (apt-get install nginx)")
    try:
        ours = f"http://127.0.0.1:{registry.port}/v2/images/{image_id}/file"
        theirs = f"http://127.0.0.1:{nginx_port}/{image_id}"
        auth = [f"X-Auth-Token: {token}"]
        first, last = size // 4, 3 * size // 4 - 1
        rng = [f"Range: bytes={first}-{last}"]
        n = max(repeat, 5)
        cases = [
            (f"registry {label} whole", ours, auth, "200", size),
            (f"registry {label} Range (middle half)", ours, auth + rng, "206", last - first + 1),
        ]
        if nginx is not None:
            cases += [
                (f"nginx {label} whole", theirs, [], "200", size),
                (f"nginx {label} Range (middle half)", theirs, rng, "206", last - first + 1),
            ]
        curl_download(ours, auth, "200")  # warm the page cache and the connection path
        for name, url, headers, expect, length in cases:
            rates = []
            for _ in range(n):
                seconds, got = curl_download(url, headers, expect)
                if got != length:
                    raise RuntimeError(f"{name}: got {got} bytes, expected {length}")
                rates.append(length / MiB / seconds)
            res.add("download", name, "MiB/s", rates)
        res.add(
            "download",
            f"cat {label} (stored file) > /dev/null",
            "MiB/s",
            [size / MiB / timed(["cat", str(stored)]) for _ in range(n)],
        )
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)


def download_budgets(res: Results, files) -> None:
    big = max(files, key=lambda k: files[k].stat().st_size)
    for kind in ("whole", "Range (middle half)"):
        ours = res.get("download", f"registry {big} {kind}")
        nginx = res.get("download", f"nginx {big} {kind}")
        if ours and nginx:
            ratio = ours["median"] / nginx["median"]
            res.budget(f"download {big} {kind}: registry / nginx", ratio, 0.8, ratio >= 0.8)
