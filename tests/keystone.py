"""A real Keystone for the Keystone-mode tests (issue 12): OpenStack's identity service
from PyPI, in a virtualenv of its own (KEYSTONE_VENV, by default var/keystone-venv, built
by `make keystone-venv` from tests/keystone_requirements.txt), served by that venv's
gunicorn on a free 127.0.0.1 port, with its SQLite database, fernet keys and
configuration in a temporary directory.

`running_keystone(tmp)` starts one and stops it (its process group, by PID) on exit;
`provision(keystone, registry_url)` creates the cast the tests use -- projects alpha,
beta and service, users alice, bob, rita, ursula, adam, glance, sam and charlie, and
the `image` service with its endpoints at the registry -- in one pass of HTTP calls
from this process; `write_clouds_yaml` writes the clouds.yaml that openstacksdk and the `openstack`
CLI read. No pytest here, as in tests/live.py: the fixtures are in
tests/keystone_mode/conftest.py.

Fast on purpose: Keystone's token cache is on (oslo_cache.dict, one worker: ~15 ms a
validation instead of ~900 ms), passwords are hashed with bcrypt at 4 rounds, and the
four keystone-manage commands share one import of Keystone (tests/keystone_manage.py).
"""

import contextlib
import grp
import hashlib
import json
import os
import pwd
import secrets
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.live import free_port

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "tests" / "keystone_requirements.txt"
KEYSTONE_VENV = ROOT / os.environ.get("KEYSTONE_VENV", "var/keystone-venv")
MANAGE_SCRIPT = ROOT / "tests" / "keystone_manage.py"
GUNICORN_CONFIG = ROOT / "tests" / "keystone_gunicorn.conf.py"
REGION = "RegionOne"
DOMAIN = "default"
TIMEOUT = 30  # seconds for one HTTP call to Keystone


def venv_problem(venv: Path = KEYSTONE_VENV) -> str | None:
    """Why the Keystone venv cannot be used, in one line; None when it can."""
    if not (venv / "bin" / "gunicorn").exists() or not (venv / "bin" / "python").exists():
        return f"Keystone venv not built at {venv}: make keystone-venv"
    stamp = venv / ".requirements-sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != wanted:
        return f"Keystone venv at {venv} is older than {REQUIREMENTS.name}: make keystone-venv"
    return None


@dataclass(frozen=True)
class Token:
    """An issued token: its id (X-Subject-Token) and the response's "token" object."""

    id: str
    data: dict

    @property
    def roles(self) -> list[str]:
        return sorted(role["name"] for role in self.data.get("roles", []))

    @property
    def project_id(self) -> str | None:
        return self.data.get("project", {}).get("id")

    def endpoints(self, service_type: str, interface: str = "public") -> list[str]:
        """The catalog's URLs for a service type and interface."""
        return [
            endpoint["url"]
            for service in self.data.get("catalog", [])
            if service["type"] == service_type
            for endpoint in service["endpoints"]
            if endpoint["interface"] == interface
        ]


@dataclass(frozen=True)
class Keystone:
    url: str  # the identity endpoint, http://127.0.0.1:PORT/v3
    pid: int  # the gunicorn master, leader of its own process group
    admin_password: str  # user "admin", admin of project "admin" and of the system
    config: Path
    log: Path  # keystone-manage's and the server's output
    token_expiration: int  # seconds
    venv: Path

    def token(
        self, username: str, password: str, project: str | None = None, *, system: bool = False
    ) -> Token:
        """A token for a password login (user and project in domain Default), scoped to
        `project` by name, to the system, or unscoped. Raises on a refusal."""
        auth: dict = {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": username, "domain": {"id": DOMAIN}, "password": password}
                },
            }
        }
        if system:
            auth["scope"] = {"system": {"all": True}}
        elif project is not None:
            auth["scope"] = {"project": {"name": project, "domain": {"id": DOMAIN}}}
        response = requests.post(f"{self.url}/auth/tokens", json={"auth": auth}, timeout=TIMEOUT)
        response.raise_for_status()
        return Token(id=response.headers["X-Subject-Token"], data=response.json()["token"])

    def admin_token(self) -> Token:
        """The bootstrap admin's system-scoped token: services and endpoints are
        system-scope operations in Keystone's default policy."""
        return self.token("admin", self.admin_password, system=True)

    def validate(self, subject: str, *, auth: str) -> requests.Response:
        """GET /v3/auth/tokens for `subject` as the holder of token `auth` (as the
        registry's keystonemiddleware does): 200 with the token, 404 when invalid."""
        return requests.get(
            f"{self.url}/auth/tokens",
            headers={"X-Auth-Token": auth, "X-Subject-Token": subject},
            timeout=TIMEOUT,
        )

    def revoke(self, subject: str, *, auth: str | None = None) -> None:
        """DELETE /v3/auth/tokens: `subject` no longer validates."""
        response = requests.delete(
            f"{self.url}/auth/tokens",
            headers={"X-Auth-Token": auth or subject, "X-Subject-Token": subject},
            timeout=TIMEOUT,
        )
        response.raise_for_status()

    def manage(self, *commands: str) -> None:
        """Run keystone-manage commands ("fernet_rotate --keystone-user u ...") on this
        Keystone's configuration; the running server sees what they change on disk."""
        _manage(self.config, self.log, commands, env=_keystone_env(self.config), venv=self.venv)


def _keystone_env(config: Path, **extra: str) -> dict[str, str]:
    # Ours (a venv, Django's settings, the caller's OpenStack credentials) stays out.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OS_", "PYTHON", "VIRTUAL_ENV", "DJANGO_"))
    }
    return {
        **env,
        "OS_KEYSTONE_CONFIG_FILES": str(config),
        "PYTHONWARNINGS": "ignore",  # eventlet's and pycadf's warnings at every start
        **extra,
    }


def _manage(
    config: Path, log: Path, commands, *, env: dict[str, str], venv: Path = KEYSTONE_VENV
) -> None:
    with open(log, "ab") as out:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-P", str(MANAGE_SCRIPT), str(config), *commands],
            cwd=config.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=180,
        )
    if done.returncode != 0:
        raise RuntimeError(f"keystone-manage {commands} failed:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _config(tmp: Path, token_expiration: int) -> str:
    return f"""\
[DEFAULT]
use_stderr = true

[database]
connection = sqlite:///{tmp / "keystone.sqlite3"}

[token]
provider = fernet
expiration = {token_expiration}

# fernet_setup fills both repositories (receipts default to /etc/keystone/fernet-keys).
[fernet_tokens]
key_repository = {tmp / "fernet-keys"}

[fernet_receipts]
key_repository = {tmp / "fernet-keys"}

[credential]
key_repository = {tmp / "credential-keys"}

# The token cache, in the one worker's memory.
[cache]
enabled = true
backend = oslo_cache.dict

# bcrypt's minimum: a login costs milliseconds, not a quarter of a second.
[identity]
password_hash_algorithm = bcrypt
password_hash_rounds = 4
"""


def _wait_until_serving(url: str, proc: subprocess.Popen, log: Path, seconds: int = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Keystone's gunicorn exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"Keystone did not answer GET {url} within {seconds} s:\n{_tail(log)}")


def _stop(proc: subprocess.Popen) -> None:
    """TERM to its process group (the master and its worker), KILL after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running_keystone(
    tmp: Path, *, token_expiration: int = 3600, venv: Path = KEYSTONE_VENV
) -> Iterator[Keystone]:
    """Start a fresh Keystone under `tmp` and stop it on exit.

    keystone.conf, the SQLite database, the fernet and credential keys and keystone.log
    are all in `tmp`. Bootstrapped: user "admin" (`admin_password`), admin of project
    "admin" and of the system; roles admin, manager, member, reader and service; region
    RegionOne; the identity service's public, internal and admin endpoints at `url`.
    Tokens last `token_expiration` seconds.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "keystone.conf"
    config.write_text(_config(tmp, token_expiration))
    log = tmp / "keystone.log"
    url = f"http://127.0.0.1:{free_port()}/v3"
    admin_password = secrets.token_urlsafe(16)
    owner = (
        f"--keystone-user {pwd.getpwuid(os.getuid()).pw_name}"
        f" --keystone-group {grp.getgrgid(os.getgid()).gr_name}"
    )
    env = _keystone_env(config)
    _manage(
        config,
        log,
        [
            "db_sync",
            f"fernet_setup {owner}",
            f"credential_setup {owner}",
            f"bootstrap --bootstrap-region-id {REGION} --bootstrap-public-url {url}"
            f" --bootstrap-internal-url {url} --bootstrap-admin-url {url}",
        ],
        env={**env, "OS_BOOTSTRAP_PASSWORD": admin_password},  # not on a command line
        venv=venv,
    )
    proc = None
    try:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [
                    str(venv / "bin" / "gunicorn"),
                    "--config",
                    str(GUNICORN_CONFIG),
                    "--bind",
                    url.removeprefix("http://").removesuffix("/v3"),
                ],
                cwd=tmp,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped whole
            )
        _wait_until_serving(url, proc, log)
        yield Keystone(
            url=url,
            pid=proc.pid,
            admin_password=admin_password,
            config=config,
            log=log,
            token_expiration=token_expiration,
            venv=venv,
        )
    finally:
        if proc is not None:
            _stop(proc)


@dataclass(frozen=True)
class User:
    name: str
    id: str
    password: str
    project: str  # the project the user works in (default project), by name
    project_id: str
    roles: tuple[str, ...]  # role names on that project


@dataclass(frozen=True)
class Cloud:
    """What `provision` made: ids by name, and every user's password."""

    keystone: Keystone
    registry_url: str  # where the catalog's image endpoints point
    projects: dict[str, str]  # name -> id
    roles: dict[str, str]  # name -> id
    users: dict[str, User]
    image_service_id: str

    def token(self, username: str) -> Token:
        """`username`'s token, scoped to the user's project."""
        user = self.users[username]
        return self.keystone.token(user.name, user.password, user.project)


# Who is who: alice and bob are plain members of one project each, rita may also
# recover images (image_recovery), ursula may only read, adam administers alpha, and
# glance is the registry's service user (keystonemiddleware validates tokens with it).
# sam holds only the `service` role and charlie only `creator`, a role Glance's rules
# never name: Keystone scopes no token to a project without some role on it, so
# charlie is how a caller with "no role" looks.
CAST = {
    "alice": ("alpha", ("member",)),
    "bob": ("beta", ("member",)),
    "rita": ("alpha", ("member", "image_recovery")),
    "ursula": ("alpha", ("reader",)),
    "adam": ("alpha", ("admin",)),
    "glance": ("service", ("admin", "service")),
    "sam": ("alpha", ("service",)),
    "charlie": ("alpha", ("creator",)),
}


def provision(keystone: Keystone, registry_url: str) -> Cloud:
    """Create the cast in `keystone`: projects alpha, beta and service (domain Default),
    the roles CAST names that bootstrap did not make (image_recovery, creator), the
    users of CAST with random passwords and their roles on their projects, and the
    image service "glance" with public, internal and admin endpoints at
    `registry_url` in RegionOne. HTTP calls as the bootstrap admin, on
    one connection: about a second, where the openstack CLI takes half a minute."""
    session = requests.Session()
    session.headers["X-Auth-Token"] = keystone.admin_token().id

    def call(method: str, path: str, body: dict | None = None) -> dict:
        response = session.request(method, f"{keystone.url}{path}", json=body, timeout=TIMEOUT)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else {}

    roles = {role["name"]: role["id"] for role in call("GET", "/roles")["roles"]}
    # Bootstrap made admin, manager, member, reader and service; the cast needs more.
    for name in sorted({role for _, names in CAST.values() for role in names} - set(roles)):
        roles[name] = call("POST", "/roles", {"role": {"name": name}})["role"]["id"]
    projects = {}
    for name in ("alpha", "beta", "service"):
        body = {"project": {"name": name, "domain_id": DOMAIN}}
        projects[name] = call("POST", "/projects", body)["project"]["id"]
    users = {}
    for name, (project, role_names) in CAST.items():
        password = secrets.token_urlsafe(12)
        body = {
            "user": {
                "name": name,
                "domain_id": DOMAIN,
                "password": password,
                "default_project_id": projects[project],
            }
        }
        user_id = call("POST", "/users", body)["user"]["id"]
        for role in role_names:
            call("PUT", f"/projects/{projects[project]}/users/{user_id}/roles/{roles[role]}")
        users[name] = User(name, user_id, password, project, projects[project], role_names)
    service = {"service": {"type": "image", "name": "glance", "enabled": True}}
    service_id = call("POST", "/services", service)["service"]["id"]
    for interface in ("public", "internal", "admin"):
        endpoint = {
            "service_id": service_id,
            "interface": interface,
            "url": registry_url,
            "region_id": REGION,
        }
        call("POST", "/endpoints", {"endpoint": endpoint})
    return Cloud(
        keystone=keystone,
        registry_url=registry_url,
        projects=projects,
        roles=roles,
        users=users,
        image_service_id=service_id,
    )


def write_clouds_yaml(
    path: Path, keystone: Keystone, user: User, project: str | None = None, *, name: str = "test"
) -> Path:
    """A clouds.yaml with one cloud, `name`, for a password login of `user` scoped to
    `project` (by default the user's own) -- for openstacksdk (`openstack.connect(cloud=
    name)` with OS_CLIENT_CONFIG_FILE=path) and the `openstack` CLI (`--os-cloud name`).
    Written as JSON, which is YAML too."""
    cloud = {
        "auth": {
            "auth_url": keystone.url,
            "username": user.name,
            "password": user.password,
            "project_name": project or user.project,
            "user_domain_id": DOMAIN,
            "project_domain_id": DOMAIN,
        },
        "auth_type": "password",
        "identity_api_version": 3,
        "region_name": REGION,
        "interface": "public",
    }
    path.write_text(json.dumps({"clouds": {name: cloud}}, indent=2) + "\n")
    return path
