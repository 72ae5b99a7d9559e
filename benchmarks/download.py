"""Downloads, whole and ranged, from each server, beside nginx (Debian package,
sendfile on) serving the same file, or `cat` of it without nginx."""

import shutil
import subprocess
import time

from benchmarks.common import MiB, Target
from benchmarks.report import Results
from benchmarks.upload import curl_upload
from tests.live import free_port

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


def _cases(label: str, size: int) -> list[tuple[str, list[str], str, int]]:
    """(row name, extra headers, expected status, bytes) for a whole and a ranged GET."""
    first, last = size // 4, 3 * size // 4 - 1
    return [
        (f"{label} whole", [], "200", size),
        (f"{label} Range (middle half)", [f"Range: bytes={first}-{last}"], "206", last - first + 1),
    ]


def _run_cases(res, server: str, url: str, auth: list[str], label, size, n, limit) -> None:
    for name, headers, expect, length in _cases(label, size):
        rates = []
        for _ in range(n):
            seconds, got = curl_download(url, auth + headers, expect)
            if got != length:
                raise RuntimeError(f"{server} {name}: got {got} bytes, expected {length}")
            rates.append(length / MiB / seconds)
        kind = name.removeprefix(f"{label} ")
        ref = ("download", f"{limit} {label} {kind}") if limit == "nginx" else limit
        res.add("download", name, "MiB/s", rates, server, limit=ref)


def measure_download(res: Results, target: Target, files, repeat, with_nginx: bool) -> None:
    """Whole and ranged GETs of the largest file, uploaded to `target` first."""
    label = max(files, key=lambda k: files[k].stat().st_size)
    path = files[label]
    image_id = target.api().create_image(f"download-{label}")
    curl_upload(target, image_id, path)
    url = f"{target.url}/v2/images/{image_id}/file"
    curl_download(url, target.curl_headers, "200")  # warm the page cache and the path
    limit = "nginx" if with_nginx else ("limits", f"cat > /dev/null {label}")
    n = max(repeat, 5)
    _run_cases(res, target.name, url, target.curl_headers, label, path.stat().st_size, n, limit)


def measure_nginx(res: Results, files, repeat, tmp) -> bool:
    """nginx serving the same file: the download figures' limit. False without nginx."""
    if not shutil.which("nginx"):
        res.skip("download beside nginx: nginx is not installed (apt-get install nginx)")
        return False
    label = max(files, key=lambda k: files[k].stat().st_size)
    path = files[label]
    port = free_port()
    nginx_dir = tmp / "nginx"
    nginx_dir.mkdir()
    conf = nginx_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=nginx_dir, port=port, root=path.parent))
    nginx = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(nginx_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        url = f"http://127.0.0.1:{port}/{path.name}"
        curl_download(url, [], "200")
        size = path.stat().st_size
        for name, headers, expect, length in _cases(label, size):
            rates = []
            for _ in range(max(repeat, 5)):
                seconds, _ = curl_download(url, headers, expect)
                rates.append(length / MiB / seconds)
            res.add("download", f"nginx {name}", "MiB/s", rates, "machine")
    finally:
        nginx.terminate()
        nginx.wait(10)
    return True


def download_budgets(res: Results, files) -> None:
    big = max(files, key=lambda k: files[k].stat().st_size)
    for kind in ("whole", "Range (middle half)"):
        ours = res.median("download", f"{big} {kind}")
        nginx = res.median("download", f"nginx {big} {kind}", "machine")
        if ours and nginx:
            ratio = ours / nginx
            glance = res.median("download", f"{big} {kind}", "glance")
            note = f"Glance: {glance / nginx:.2f} x nginx" if glance else ""
            res.budget(f"download {big} {kind}: registry / nginx", ratio, 0.8, ratio >= 0.8, note)
