"""A bad configuration value stops start-up with a message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _check(tmp_path, **env):
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGES_", "DJANGO_", "DATABASE_URL"))
    }
    environ.update({"SECRET_KEY": "k", "ALLOWED_HOSTS": "localhost", **env})
    environ["DATABASE_URL"] = env.get("DATABASE_URL", "sqlite:///:memory:")
    environ["VAR_DIR"] = str(tmp_path / "var")  # not the checkout's, which may hold a secret
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("IMAGES_DELAYED_DELETE", "maybe", "IMAGES_DELAYED_DELETE must be a boolean"),
        ("IMAGES_SCRUB_DELAY_SECONDS", "soon", "IMAGES_SCRUB_DELAY_SECONDS must be an integer"),
        ("IMAGES_SCRUB_WAKEUP_SECONDS", "0", "IMAGES_SCRUB_WAKEUP_SECONDS must be at least 1"),
        ("IMAGES_PURGE_AFTER_DAYS", "-1", "IMAGES_PURGE_AFTER_DAYS must be at least 0"),
        ("IMAGES_SIZE_CAP", "1 PB", "IMAGES_SIZE_CAP must be a byte count"),
        ("IMAGES_USER_STORAGE_QUOTA", "lots", "IMAGES_USER_STORAGE_QUOTA must be a byte count"),
        ("IMAGES_UPLOAD_STALE_SECONDS", "1.5", "IMAGES_UPLOAD_STALE_SECONDS must be an integer"),
        ("DJANGO_DEBUG", "perhaps", "DJANGO_DEBUG must be a boolean"),
        (
            "IMAGES_NOTIFICATION_DRIVER",
            "pigeon",
            "IMAGES_NOTIFICATION_DRIVER has unknown value(s) pigeon",
        ),
        (
            "IMAGES_NOTIFICATION_DRIVER",
            "messagingv2",
            "IMAGES_NOTIFICATION_TRANSPORT_URL is needed by IMAGES_NOTIFICATION_DRIVER",
        ),
        (
            "IMAGES_NOTIFICATION_TRANSPORT_URL",
            "http://user:secret@host/",
            "IMAGES_NOTIFICATION_TRANSPORT_URL must be an oslo.messaging transport URL",
        ),
        ("IMAGES_NOTIFICATION_RETRY", "-1", "IMAGES_NOTIFICATION_RETRY must be at least 0"),
        ("DATABASE_URL", "nonsense://x", "DATABASE_URL is not a valid database URL"),
        ("DATABASE_CONN_MAX_AGE", "forever", "DATABASE_CONN_MAX_AGE must be an integer"),
        ("SECRET_KEY", "", "SECRET_KEY is not set"),
        ("ALLOWED_HOSTS", "", "ALLOWED_HOSTS is not set"),
    ],
)
def test_settings_bad_value_stops_startup_naming_variable(tmp_path, name, value, message):
    result = _check(tmp_path, **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_settings_good_values_start(tmp_path):
    result = _check(tmp_path, IMAGES_USER_STORAGE_QUOTA="20MB", IMAGES_SIZE_CAP="1073741824")
    assert result.returncode == 0, result.stderr


def test_settings_quota_uses_binary_units():
    code = "from django.conf import settings; print(settings.IMAGES_USER_STORAGE_QUOTA)"
    environ = {**os.environ, "SECRET_KEY": "k", "ALLOWED_HOSTS": "x"}
    environ["IMAGES_USER_STORAGE_QUOTA"] = "20MB"
    environ["DJANGO_SETTINGS_MODULE"] = "glance_site.settings"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == str(20 * 2**20), result.stderr


def test_settings_development_secret_from_make_run_is_found(tmp_path):
    """After `make run`, manage.py by hand (the README's create_token) needs no env."""
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret_key").write_text("secret-written-by-make-run\n")
    code = "from django.conf import settings; print(settings.SECRET_KEY, settings.ALLOWED_HOSTS)"
    result = _python(tmp_path, code, SECRET_KEY="", ALLOWED_HOSTS=None)
    assert result.stdout.split(" ", 1) == [
        "secret-written-by-make-run",
        "['127.0.0.1', 'localhost']\n",
    ]


def test_settings_without_secret_or_development_secret_refuses_to_start(tmp_path):
    result = _check(tmp_path, SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "var" / "secret_key").exists()


def _python(tmp_path, code: str, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGES_", "DJANGO_"))}
    environ.update(
        {"VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "glance_site.settings"}
    )
    for name, value in env.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
