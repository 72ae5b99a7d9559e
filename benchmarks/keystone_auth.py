"""What Keystone mode costs a request: the same GET against the registry with a Django
token and with a Keystone token (keystonemiddleware's cache warm), in one run, and the
first use of a new Keystone token (the cache miss: one validation call to Keystone).

A real Keystone from the tests' harness (tests/keystone.py, its own venv); without it
the section is left out with one line saying how to build it.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from benchmarks.report import Results, log
from tests.keystone import provision, running_keystone, venv_problem
from tests.live import free_port, running_registry

CLIENTS = 4


def _create(url: str, headers: dict) -> str:
    body = {"name": "auth-bench", "disk_format": "raw", "container_format": "bare"}
    response = requests.post(f"{url}/v2/images", json=body, headers=headers, timeout=30)
    response.raise_for_status()
    return response.json()["id"]


def _rate(url: str, headers: dict, total: int) -> float:
    """GETs of one image per second, CLIENTS clients each on its own connection."""

    def client(_):
        session = requests.Session()
        session.headers.update(headers)
        for _ in range(total // CLIENTS):
            session.get(url, timeout=30).raise_for_status()

    client(None)  # warm: connections, caches, the token's validation
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    return total // CLIENTS * CLIENTS / (time.perf_counter() - started)


def measure_auth(res: Results, tmp: Path, repeat: int, total: int) -> None:
    problem = venv_problem()
    if problem is not None:
        res.skip(f"Keystone token cost: {problem}")
        return
    with running_keystone(tmp / "keystone") as keystone:
        cloud = provision(keystone, registry_url=f"http://127.0.0.1:{free_port()}")
        glance = cloud.users["glance"]
        env = {
            "KEYSTONE_AUTH_URL": keystone.url,
            "KEYSTONE_SERVICE_USER": glance.name,
            "KEYSTONE_SERVICE_PASSWORD": glance.password,
            "KEYSTONE_SERVICE_PROJECT": glance.project,
        }
        port = int(cloud.registry_url.rsplit(":", 1)[1])
        (tmp / "keystone-mode").mkdir()
        (tmp / "django-mode").mkdir()
        with (
            running_registry(tmp / "keystone-mode", env=env, port=port) as in_keystone,
            running_registry(tmp / "django-mode") as embedded,
        ):
            django_headers = {"X-Auth-Token": embedded.tokens["alice"]}
            django_url = f"{embedded.url}/v2/images/{_create(embedded.url, django_headers)}"
            keystone_headers = {"X-Auth-Token": cloud.token("alice").id}
            keystone_url = (
                f"{in_keystone.url}/v2/images/{_create(in_keystone.url, keystone_headers)}"
            )
            django_rates, keystone_rates, first_use = [], [], []
            for _ in range(repeat):
                django_rates.append(_rate(django_url, django_headers, total))
                keystone_rates.append(_rate(keystone_url, keystone_headers, total))
                for _ in range(10):
                    token = cloud.token("alice").id
                    started = time.perf_counter()
                    response = requests.get(keystone_url, headers={"X-Auth-Token": token})
                    response.raise_for_status()
                    first_use.append((time.perf_counter() - started) * 1000)
    name = f"GET /v2/images/{{id}}, {CLIENTS} clients"
    res.add("auth", f"{name}, Django token", "req/s", django_rates)
    res.add("auth", f"{name}, Keystone token (cached)", "req/s", keystone_rates)
    res.add("auth", "GET with a new Keystone token (validated)", "ms", first_use)
    log(
        f"auth: Django {max(django_rates):.0f} req/s, Keystone cached {max(keystone_rates):.0f}"
        f" req/s, a new token's first request {min(first_use):.1f} ms"
    )
