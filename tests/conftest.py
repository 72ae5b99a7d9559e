"""Shared fixtures: the cast (alice, bob, charlie, an admin), a real store on disk,
a store that fails, images in any status built through the real transitions, and
the production server (tests/live.py)."""

import io
import os
from collections.abc import Iterator
from importlib import import_module

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.test.utils import override_settings

from tests.disk_images import disk_images  # noqa: F401  (real disk images, built once a session)
from tests.factories import image_in
from tests.live import Registry, running_registry

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The cast signs in with passwords; PBKDF2's deliberate slowness costs 0.4 s a user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def image_store(tmp_path, settings):
    """Every test gets its own empty filesystem store."""
    store = tmp_path / "store"
    settings.STORAGES = {
        **settings.STORAGES,
        "images": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(store)},
        },
    }
    return store


@pytest.fixture(scope="session", autouse=True)
def static_files_without_collectstatic():
    """Tests run without `collectstatic`: static files come from the apps, unhashed,
    and WhiteNoise does not warn about the missing STATIC_ROOT. Session-wide, because
    the live server builds its middleware once, before any function fixture runs."""
    with override_settings(
        STORAGES={
            **django_settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        WHITENOISE_AUTOREFRESH=True,
    ):
        yield


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[Registry]:
    """The production server, one for the session (tests/live.py)."""
    with running_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture
def payload_file(tmp_path):
    """A few MiB of random bytes on disk, and their content."""

    def make(size: int = 3 * 1024 * 1024 + 321):
        data = os.urandom(size)
        path = tmp_path / f"disk-{size}.raw"
        path.write_bytes(data)
        return path, data

    return make


@pytest.fixture
def failing_store(tmp_path, settings):
    """A store whose writes and deletes fail, as a broken disk or object store would."""

    def use(*, fail_writes=True, fail_deletes=True):
        settings.STORAGES = {
            **settings.STORAGES,
            "images": {
                "BACKEND": "tests.failing_storage.FailingStorage",
                "OPTIONS": {
                    "location": str(tmp_path / "store"),
                    "fail_writes": fail_writes,
                    "fail_deletes": fail_deletes,
                },
            },
        }

    return use


def _user(django_user_model, username, **extra):
    return django_user_model.objects.create_user(username=username, password="pw", **extra)


@pytest.fixture
def alice(django_user_model):
    return _user(django_user_model, "alice")


@pytest.fixture
def bob(django_user_model):
    return _user(django_user_model, "bob")


@pytest.fixture
def charlie(django_user_model):
    return _user(django_user_model, "charlie")


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(username="admin", password="pw")


@pytest.fixture
def recovery_staff(django_user_model):
    user = _user(django_user_model, "rita", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_image", "restore_image"])
    )
    return user


@pytest.fixture
def admin_roles(db):
    """The groups migration 0003 creates ("Image administrators", "Recovery staff").
    A transactional test flushes the database, migration data included: made again
    here, the same way, whatever ran before."""
    from django.apps import apps

    import_module("images.migrations.0003_admin_roles").create_roles(apps, None)


@pytest.fixture
def make_image():
    return image_in


@pytest.fixture
def payload():
    """A few MiB of non-repeating bytes."""
    return os.urandom(3 * 1024 * 1024 + 123)


def stream(data: bytes):
    return io.BytesIO(data)


@pytest.fixture
def run_jobs(settings, django_capture_on_commit_callbacks):
    """Background jobs (django-tasks) run in this process as their request commits,
    on the immediate backend: a test sees the worker's outcome."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}

    def requesting(call):
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return requesting
