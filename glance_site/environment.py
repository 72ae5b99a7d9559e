"""Reading the settings from the environment: one parser per kind of value, each
raising ImproperlyConfigured with the variable's name when the value is wrong.
glance_site/settings.py says which variables there are and what they default to."""

import configparser
import ipaddress
import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SIZE_UNITS = {"": 1, "B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_size(name: str, default: int) -> int:
    """A byte count: plain bytes or Glance's binary units (20MB = 20 MiB)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?B)?\s*", raw.upper())
    if not match:
        raise ImproperlyConfigured(
            f"{name} must be a byte count such as 1073741824 or 20MB, got {raw!r}"
        )
    return int(match.group(1)) * _SIZE_UNITS[match.group(2) or ""]


def env_rate(name: str, default: str | None) -> str | None:
    """A request rate for DRF's throttles, "100/s" (s, m, h or d); "0" or "off" for none."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("0", "off", "none"):
        return None
    match = re.fullmatch(r"(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)", value)
    if not match or int(match.group(1)) == 0:
        raise ImproperlyConfigured(
            f"{name} must be a rate such as 100/s, 1000/m or 20000/h (or 0 for no limit), "
            f"got {raw!r}"
        )
    return f"{int(match.group(1))}/{match.group(2)}"


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choices(name: str, allowed: list[str], default: list[str]) -> list[str]:
    chosen = env_list(name, default)
    unknown = [value for value in chosen if value not in allowed]
    if unknown:
        raise ImproperlyConfigured(
            f"{name} has unknown value(s) {', '.join(unknown)}; choose from {', '.join(allowed)}"
        )
    return chosen


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


def web_download_schemes(name: str, default: list[str]) -> list[str]:
    schemes = [scheme.lower() for scheme in env_list(name, default)]
    unknown = [scheme for scheme in schemes if scheme not in ("http", "https")]
    if unknown and name.endswith("_ALLOWED_SCHEMES"):
        # Glance, too, fetches nothing else (validate_location_uri).
        raise ImproperlyConfigured(f"{name} may list only http and https, got {', '.join(unknown)}")
    return schemes


def web_download_ports(name: str, default: list[int]) -> list[int]:
    if name not in os.environ:
        return default
    raw = env_list(name, [])
    if not all(port.isdigit() and 1 <= int(port) <= 65535 for port in raw):
        raise ImproperlyConfigured(
            f"{name} must be comma-separated port numbers (1-65535), got {os.environ[name]!r}"
        )
    return [int(port) for port in raw]


def web_download_hosts(name: str) -> list[str]:
    hosts = []
    for raw in env_list(name, []):
        host = raw.lower().removeprefix("[").removesuffix("]").removesuffix(".")
        try:
            hosts.append(str(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if not _HOST_NAME.fullmatch(host) or host.rsplit(".", 1)[-1].isdigit():
            raise ImproperlyConfigured(
                f"{name} must be comma-separated host names or IP addresses, got {raw!r}"
            )
        hosts.append(host)
    return hosts


def keystone_authtoken() -> dict[str, str] | None:
    """keystonemiddleware auth_token's options, or None outside Keystone mode.

    From KEYSTONE_AUTHTOKEN_CONFIG's [keystone_authtoken] section (an operator's
    existing glance-api.conf will do), then the KEYSTONE_* variables over it."""
    options: dict[str, str] = {}
    path = os.environ.get("KEYSTONE_AUTHTOKEN_CONFIG", "")
    if path:
        parser = configparser.ConfigParser(interpolation=None)
        if not parser.read(path) or not parser.has_section("keystone_authtoken"):
            raise ImproperlyConfigured(
                f"KEYSTONE_AUTHTOKEN_CONFIG {path} has no [keystone_authtoken] section"
            )
        options.update(parser["keystone_authtoken"])
    variables = {
        "auth_url": "KEYSTONE_AUTH_URL",
        "username": "KEYSTONE_SERVICE_USER",
        "password": "KEYSTONE_SERVICE_PASSWORD",
        "project_name": "KEYSTONE_SERVICE_PROJECT",
        "user_domain_name": "KEYSTONE_USER_DOMAIN",
        "project_domain_name": "KEYSTONE_PROJECT_DOMAIN",
        "token_cache_time": "KEYSTONE_TOKEN_CACHE_SECONDS",
    }
    options.update({key: os.environ[name] for key, name in variables.items() if name in os.environ})
    if not options.get("auth_url"):
        if path:
            raise ImproperlyConfigured(f"KEYSTONE_AUTHTOKEN_CONFIG {path} sets no auth_url")
        return None
    for key in ("username", "password", "project_name"):
        if not options.get(key):
            raise ImproperlyConfigured(
                f"Keystone mode needs {variables[key]} (or {key} in the file)"
            )
    options.setdefault("auth_type", "password")
    options.setdefault("user_domain_name", "Default")
    options.setdefault("project_domain_name", "Default")
    options.setdefault("www_authenticate_uri", options["auth_url"])
    # Requests without a token still reach Django: the admin, the versions document
    # and session users of the browsable API need none; the API answers 401 itself.
    options["delay_auth_decision"] = "true"
    return options


# oslo.messaging's notification drivers (its oslo.messaging.notify.drivers entry
# points), but `routing`, whose routing file has no setting here.
NOTIFICATION_DRIVERS = ["messagingv2", "messaging", "log", "test", "noop"]
_TRANSPORT_URL = re.compile(r"(rabbit|kafka|amqp|fake)://\S*")


def notification_transport_url(name: str, drivers: list[str]) -> str:
    """oslo.messaging's transport_url; the messaging drivers cannot do without one."""
    raw = os.environ.get(name, "").strip()
    if raw and not _TRANSPORT_URL.fullmatch(raw):
        # Not the value itself in the message: it may carry the bus's password.
        raise ImproperlyConfigured(
            f"{name} must be an oslo.messaging transport URL such as "
            f"rabbit://user:password@host:5672/, got one starting {raw.split(':')[0]!r}"
        )
    if not raw and {"messaging", "messagingv2"} & set(drivers):
        raise ImproperlyConfigured(
            f"{name} is needed by IMAGES_NOTIFICATION_DRIVER={','.join(drivers)}: "
            "the bus to send to, such as rabbit://user:password@host:5672/"
        )
    return raw
