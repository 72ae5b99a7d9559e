"""images/remote.py against a real HTTP server on loopback: what it fetches, what it
refuses (before connecting), and how a broken transfer ends."""

import gzip
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from images.remote import MAX_REDIRECTS, RemoteError, RemoteRefused, check_url, open_remote

ROOT = Path(__file__).resolve().parent.parent
BODY = bytes(range(256)) * 12289  # 3 MiB and change: several reads, not a round number


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        path, _, query = self.path.partition("?")
        route = getattr(self, "route_" + path.strip("/").replace("-", "_"), None)
        if route is None:
            self._send(404, b"no such thing")
        else:
            route(parse_qs(query))

    def route_image(self, query) -> None:
        self._send(200, BODY)

    def route_chunked(self, query) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(BODY), 100_000):
            chunk = BODY[start : start + 100_000]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def route_broken_chunk(self, query) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"%x\r\n%s" % (len(BODY), BODY[:1000]))
        self.close_connection = True

    def route_gzip(self, query) -> None:
        self._send(200, gzip.compress(BODY), {"Content-Encoding": "gzip"})

    def route_short(self, query) -> None:
        # Promises the whole body, sends the first 1000 bytes and hangs up.
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY[:1000])
        self.close_connection = True

    def route_stall(self, query) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY[:1000])
        self.wfile.flush()
        time.sleep(3)
        self.close_connection = True

    def route_host(self, query) -> None:
        self._send(200, self.headers["Host"].encode())

    def route_redirect(self, query) -> None:
        self._send(int(query.get("code", ["302"])[0]), b"", {"Location": query["to"][0]})

    def route_loop(self, query) -> None:
        self._send(302, b"", {"Location": "/loop"})

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[str]


@dataclass
class Server:
    port: int
    requests: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@contextmanager
def _serving(tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(httpd.server_address[1], httpd.requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def origin(settings) -> Iterator[Server]:
    """The server images come from, and the rules that allow it (loopback listed)."""
    with _serving() as server:
        settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = ["127.0.0.1"]
        settings.IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS = [server.port]
        yield server


@pytest.fixture
def elsewhere() -> Iterator[Server]:
    """A second server, on a port the rules do not allow: it must see no request."""
    with _serving() as server:
        yield server


def _read_all(stream, chunk: int = 64 * 1024) -> bytes:
    """Reads as the ingest does: into views of a buffer, until 0."""
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    data = bytearray()
    while n := stream.readinto(view):
        data += view[:n]
    return bytes(data)


@pytest.fixture
def resolver(monkeypatch):
    """Names of our choosing, answered by the system resolver's function; lookups
    counted, so a test can tell how often a name was resolved."""
    real = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.rstrip(".") if isinstance(host, str) else host
        if name not in answers:
            return real(host, port, *args, **kwargs)
        lookups.append(name)
        addresses = answers[name][0] if len(answers[name]) == 1 else answers[name].pop(0)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, lookups


# Fetching


def test_open_remote_reads_exactly_the_served_bytes(origin):
    with open_remote(origin.url("/image")) as stream:
        assert stream.size == len(BODY)
        assert _read_all(stream) == BODY
        assert stream.readinto(bytearray(10)) == 0


def test_open_remote_reads_a_chunked_body_without_a_size(origin):
    with open_remote(origin.url("/chunked")) as stream:
        assert stream.size is None
        assert _read_all(stream, chunk=7000) == BODY


def test_open_remote_keeps_content_encoded_bytes_as_sent(origin):
    with open_remote(origin.url("/gzip")) as stream:
        data = _read_all(stream)
    assert data == gzip.compress(BODY)
    assert stream.size == len(data)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_open_remote_follows_a_redirect_to_an_allowed_url(origin, code):
    with open_remote(origin.url(f"/redirect?code={code}&to=/image")) as stream:
        assert _read_all(stream) == BODY
    assert origin.requests == [f"/redirect?code={code}&to=/image", "/image"]


def test_open_remote_follows_an_absolute_redirect(origin):
    target = origin.url("/image")
    with open_remote(origin.url(f"/redirect?to={target}")) as stream:
        assert _read_all(stream) == BODY


def test_open_remote_stops_after_max_redirects(origin):
    with (
        pytest.raises(RemoteError, match=f"redirects more than {MAX_REDIRECTS} times"),
        open_remote(origin.url("/loop")),
    ):
        pass
    assert origin.requests == ["/loop"] * (MAX_REDIRECTS + 1)


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "the host 169.254.169.254 is not allowed"),
        ("http://10.0.0.1/image", "the host 10.0.0.1 is not allowed"),
        ("file:///etc/passwd", "the file scheme is not allowed"),
    ],
)
def test_open_remote_refuses_a_redirect_the_rules_refuse(origin, location, reason):
    started = time.monotonic()
    with (
        pytest.raises(RemoteRefused) as refused,
        open_remote(origin.url(f"/redirect?to={location}")),
    ):
        pass
    assert refused.value.message == f"Redirect to {location.split('?')[0]} refused: {reason}"
    # 10.0.0.1 and 169.254.169.254 would have made it wait for a timeout.
    assert time.monotonic() - started < 2


def test_open_remote_refuses_a_redirect_to_a_port_not_allowed(origin, elsewhere):
    target = elsewhere.url("/image")
    with (
        pytest.raises(RemoteRefused, match=rf"the port {elsewhere.port} is not allowed"),
        open_remote(origin.url(f"/redirect?to={target}")),
    ):
        pass
    assert elsewhere.requests == []


def test_open_remote_refuses_a_redirect_to_a_name_not_listed(origin):
    # localhost is the same server, but the allow list names 127.0.0.1 only.
    target = origin.url("/image", host="localhost")
    with (
        pytest.raises(RemoteRefused, match="the host localhost is not allowed"),
        open_remote(origin.url(f"/redirect?to={target}")),
    ):
        pass
    assert origin.requests == [f"/redirect?to={target}"]


def test_open_remote_refuses_loopback_by_default(origin, settings):
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = []
    with (
        pytest.raises(RemoteRefused, match=r"127.0.0.1 is a loopback address"),
        open_remote(origin.url("/image")),
    ):
        pass
    assert origin.requests == []


def test_open_remote_server_closing_early_raises_remote_error(origin):
    with open_remote(origin.url("/short")) as stream, pytest.raises(RemoteError) as broken:
        _read_all(stream)
    assert broken.value.message == (
        f"The transfer from {origin.url('/short')} broke off after 1000 of {len(BODY)} bytes: "
        "the connection closed"
    )


def test_open_remote_broken_chunk_raises_remote_error(origin):
    with (
        open_remote(origin.url("/broken-chunk")) as stream,
        pytest.raises(RemoteError, match="broke off after"),
    ):
        _read_all(stream)


def test_open_remote_stalled_server_times_out(origin, settings):
    settings.IMAGES_WEB_DOWNLOAD_TIMEOUT = 1
    with (
        open_remote(origin.url("/stall")) as stream,
        pytest.raises(RemoteError, match=r"broke off after \d+ of \d+ bytes: timed out"),
    ):
        _read_all(stream)


def test_open_remote_http_error_raises_remote_error(origin):
    with pytest.raises(RemoteError) as failed, open_remote(origin.url("/missing?token=secret")):
        pass
    assert failed.value.message == f"{origin.url('/missing')} answered HTTP 404 Not Found"


def test_open_remote_closed_port_raises_remote_error(origin, settings):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS = [port]
    with (
        pytest.raises(RemoteError, match=rf"Cannot connect to 127.0.0.1 port {port}: "),
        open_remote(f"http://127.0.0.1:{port}/image"),
    ):
        pass


def test_open_remote_connects_to_the_address_it_checked(origin, settings, resolver):
    answers, lookups = resolver
    # A rebinding name: the first answer is the one checked, later ones point elsewhere.
    answers["mirror.test"] = [["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]]
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = ["mirror.test"]
    with open_remote(origin.url("/host", host="mirror.test")) as stream:
        assert _read_all(stream) == f"mirror.test:{origin.port}".encode()
    assert lookups == ["mirror.test"]


def test_open_remote_tries_the_next_checked_address(origin, settings, resolver):
    answers, _ = resolver
    answers["mirror.test"] = [["127.0.0.2", "127.0.0.1"]]
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = ["mirror.test"]
    with open_remote(origin.url("/image", host="mirror.test")) as stream:
        assert _read_all(stream) == BODY


@pytest.fixture
def tls_origin(tmp_path, settings, resolver) -> Iterator[tuple[Server, Path]]:
    """An https server whose certificate names mirror.test, a name resolving to it;
    and the certificate, for a trust store."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=mirror.test"
    name = "subjectAltName=DNS:mirror.test"
    subprocess.run(
        ["openssl", *request.split(), "-addext", name, "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    answers, _ = resolver
    answers["mirror.test"] = [["127.0.0.1"]]
    with _serving(tls=context) as server:
        settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = ["mirror.test"]
        settings.IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS = [server.port]
        yield server, cert


def test_open_remote_https_checks_the_certificate_for_the_name(tls_origin, monkeypatch):
    server, cert = tls_origin
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    url = f"https://mirror.test:{server.port}/image"
    with open_remote(url) as stream:
        assert _read_all(stream) == BODY


def test_open_remote_https_refuses_an_untrusted_certificate(tls_origin):
    server, _ = tls_origin
    url = f"https://mirror.test:{server.port}/image"
    with pytest.raises(RemoteError, match="certificate verification failed"), open_remote(url):
        pass


# Checking


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 is a loopback address"),
        ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1 is a private address"),
        ("http://[2002:a9fe:a9fe::]/", "2002:a9fe:a9fe:: is a link-local address"),
        ("http://[fd00::1]/", "fd00::1 is a private address"),
        ("http://localhost/", "localhost resolves to a loopback address"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://192.168.1.1/", "192.168.1.1 is a private address"),
        ("http://169.254.169.254/", "169.254.169.254 is a link-local address"),
        ("http://[fe80::1]/", "fe80::1 is a link-local address"),
        ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://100.64.0.1/", "100.64.0.1 is a non-public address"),
    ],
)
def test_check_url_refuses_non_public_addresses_by_default(url, reason):
    with pytest.raises(RemoteRefused) as refused:
        check_url(url)
    assert refused.value.message == f"URL {url} refused: {reason}"


@pytest.mark.parametrize("host", ["93.184.216.34", "[2606:2800:220:1::]", "[64:ff9b::5db8:d822]"])
def test_check_url_accepts_a_public_address(host):
    check_url(f"https://{host}/images/cirros.img?x=1")


def test_check_url_refuses_a_name_if_any_address_is_not_public(resolver):
    answers, _ = resolver
    answers["mixed.test"] = [["93.184.216.34", "10.1.2.3"]]
    with pytest.raises(RemoteRefused, match=r"mixed.test resolves to a private address"):
        check_url("http://mixed.test/image")


def test_check_url_allows_a_listed_private_host(settings):
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = ["10.0.0.1", "localhost"]
    check_url("http://10.0.0.1/image")
    check_url("http://localhost/image")


def test_check_url_allow_list_refuses_every_other_host(settings):
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = ["10.0.0.1"]
    with pytest.raises(RemoteRefused, match=r"the host 93.184.216.34 is not allowed"):
        check_url("http://93.184.216.34/image")


@pytest.mark.parametrize(
    "url", ["ftp://93.184.216.34/image", "file:///etc/passwd", "gopher://93.184.216.34/", "//x/"]
)
def test_check_url_refuses_other_schemes_even_with_no_allow_list(settings, url):
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_SCHEMES = []
    with pytest.raises(RemoteRefused, match="scheme is not allowed"):
        check_url(url)


def test_check_url_refuses_a_denied_scheme(settings):
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_SCHEMES = []
    settings.IMAGES_WEB_DOWNLOAD_DISALLOWED_SCHEMES = ["http"]
    with pytest.raises(RemoteRefused, match="the http scheme is not allowed"):
        check_url("http://93.184.216.34/image")
    check_url("https://93.184.216.34/image")


def test_check_url_refuses_a_port_not_allowed():
    with pytest.raises(RemoteRefused, match="the port 8080 is not allowed"):
        check_url("http://93.184.216.34:8080/image")


def test_check_url_checks_the_default_port_too(settings):
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS = [8443]
    with pytest.raises(RemoteRefused, match="the port 443 is not allowed"):
        check_url("https://93.184.216.34/image")
    check_url("https://93.184.216.34:8443/image")


def test_check_url_refuses_a_denied_port_when_no_allow_list(settings):
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS = []
    settings.IMAGES_WEB_DOWNLOAD_DISALLOWED_PORTS = [22]
    with pytest.raises(RemoteRefused, match="the port 22 is not allowed"):
        check_url("http://93.184.216.34:22/")
    check_url("http://93.184.216.34:8080/")


def test_check_url_refuses_a_denied_host(settings):
    settings.IMAGES_WEB_DOWNLOAD_DISALLOWED_HOSTS = ["93.184.216.34", "Bad.Example."]
    with pytest.raises(RemoteRefused, match=r"the host 93.184.216.34 is not allowed"):
        check_url("http://93.184.216.34/image")
    with pytest.raises(RemoteRefused, match=r"the host bad.example is not allowed"):
        check_url("http://BAD.example/image")


def test_check_url_refuses_a_name_for_a_denied_address(settings, resolver):
    answers, _ = resolver
    answers["alias.test"] = [["93.184.216.34"]]
    settings.IMAGES_WEB_DOWNLOAD_DISALLOWED_HOSTS = ["93.184.216.34"]
    with pytest.raises(RemoteRefused, match=r"the host alias.test is not allowed"):
        check_url("http://alias.test/image")


def test_check_url_deny_list_is_ignored_when_an_allow_list_is_set(settings):
    # Glance's rule for every pair of lists.
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = ["93.184.216.34"]
    settings.IMAGES_WEB_DOWNLOAD_DISALLOWED_HOSTS = ["93.184.216.34"]
    check_url("http://93.184.216.34/image")


def test_check_url_refuses_credentials_without_showing_them():
    with pytest.raises(RemoteRefused) as refused:
        check_url("http://alice:s3cret@93.184.216.34/image")
    assert refused.value.message == (
        "URL http://93.184.216.34/image refused: user names and passwords in URLs are not allowed"
    )


@pytest.mark.parametrize(
    "host", ["2130706433", "127.1", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "a b", ""]
)
def test_check_url_refuses_hosts_written_as_numbers_or_nonsense(settings, host):
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = ["127.0.0.1"]
    with pytest.raises(RemoteRefused, match="is not a valid host"):
        check_url(f"http://{host}/image")


def test_check_url_refuses_an_unresolvable_name():
    with pytest.raises(RemoteRefused, match=r"the host no-such-host.invalid does not resolve"):
        check_url("http://no-such-host.invalid/image")


def test_check_url_refuses_a_malformed_port():
    with pytest.raises(RemoteRefused, match="refused: Port out of range"):
        check_url("http://93.184.216.34:99999/image")


# Settings


def _settings(**env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IMAGES_WEB_DOWNLOAD_")}
    environ.update({"SECRET_KEY": "k", "ALLOWED_HOSTS": "localhost", **env})
    environ["DATABASE_URL"] = "sqlite:///:memory:"
    code = (
        "import glance_site.settings as s; "
        "print({k: v for k, v in vars(s).items() if k.startswith('IMAGES_WEB_DOWNLOAD_')})"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True
    )


def test_settings_web_download_defaults_are_glances():
    result = _settings()
    assert result.returncode == 0, result.stderr
    assert eval(result.stdout) == {
        "IMAGES_WEB_DOWNLOAD_ALLOWED_SCHEMES": ["http", "https"],
        "IMAGES_WEB_DOWNLOAD_DISALLOWED_SCHEMES": [],
        "IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS": [80, 443],
        "IMAGES_WEB_DOWNLOAD_DISALLOWED_PORTS": [],
        "IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS": [],
        "IMAGES_WEB_DOWNLOAD_DISALLOWED_HOSTS": [],
        "IMAGES_WEB_DOWNLOAD_TIMEOUT": 60,
    }


def test_settings_web_download_values_are_normalised():
    result = _settings(
        IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS="",
        IMAGES_WEB_DOWNLOAD_DISALLOWED_PORTS="22, 8080",
        IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS="Mirror.Example., [::1], 127.0.0.1",
        IMAGES_WEB_DOWNLOAD_ALLOWED_SCHEMES="HTTPS",
    )
    assert result.returncode == 0, result.stderr
    values = eval(result.stdout)
    assert values["IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS"] == []
    assert values["IMAGES_WEB_DOWNLOAD_DISALLOWED_PORTS"] == [22, 8080]
    assert values["IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS"] == ["mirror.example", "::1", "127.0.0.1"]
    assert values["IMAGES_WEB_DOWNLOAD_ALLOWED_SCHEMES"] == ["https"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS", "80,http", "must be comma-separated port numbers"),
        ("IMAGES_WEB_DOWNLOAD_DISALLOWED_PORTS", "70000", "must be comma-separated port numbers"),
        ("IMAGES_WEB_DOWNLOAD_ALLOWED_SCHEMES", "https,ftp", "may list only http and https"),
        ("IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS", "good.example,bad host", "must be comma-separated"),
        ("IMAGES_WEB_DOWNLOAD_DISALLOWED_HOSTS", "127.1", "must be comma-separated host names"),
        ("IMAGES_WEB_DOWNLOAD_TIMEOUT", "0", "must be at least 1"),
    ],
)
def test_settings_web_download_bad_value_stops_startup_naming_variable(name, value, message):
    result = _settings(**{name: value})
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name} {message}" in result.stderr
