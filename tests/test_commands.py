"""Management commands: what they print, what they change, how they refuse."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token

from images import services
from images.enums import Status
from images.models import Image

pytestmark = pytest.mark.django_db


def _run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _pending_delete(alice, data=b"data"):
    image = services.image_create(actor=alice, name="x", disk_format="raw", container_format="bare")
    image = services.image_upload(image=image, actor=alice, stream=io.BytesIO(data))
    return services.image_delete(image=image, actor=alice)


def test_restore_image_brings_back_pending_delete(alice):
    image = _pending_delete(alice)
    out = _run("restore_image", str(image.pk))
    image.refresh_from_db()
    assert image.status == Status.ACTIVE
    assert out == f"{image.pk}: restored, now active\n"
    assert image.transitions.last().actor == "operator"


def test_restore_image_refuses_live_image_with_one_line(alice):
    image = services.image_create(actor=alice, name="live")
    with pytest.raises(CommandError) as refused:
        _run("restore_image", str(image.pk))
    assert str(refused.value) == (
        f"{image.pk}: Image {image.pk} is queued, not pending_delete: "
        "only pending_delete images can be restored."
    )
    image.refresh_from_db()
    assert image.status == Status.QUEUED


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_restore_image_unknown_id_refused(bad_id):
    with pytest.raises(CommandError, match=f"No image found with ID {bad_id}"):
        _run("restore_image", bad_id)


def test_scrub_images_reports_and_scrubs_due_images(alice, image_store, settings):
    image = _pending_delete(alice)
    Image.objects.filter(pk=image.pk).update(
        deleted_at=timezone.now() - timedelta(seconds=settings.IMAGES_SCRUB_DELAY_SECONDS + 1)
    )
    out = _run("scrub_images")
    image.refresh_from_db()
    assert image.status == Status.DELETED
    assert not (image_store / str(image.pk)).exists()
    assert out.startswith("scrubbed 1, failed 0,")


def test_scrub_images_store_failure_exits_nonzero(alice, failing_store, settings):
    image = _pending_delete(alice)
    Image.objects.filter(pk=image.pk).update(
        deleted_at=timezone.now() - timedelta(seconds=settings.IMAGES_SCRUB_DELAY_SECONDS + 1)
    )
    failing_store(fail_writes=False)
    with pytest.raises(CommandError, match=r"1 image\(s\) could not be scrubbed"):
        _run("scrub_images")
    image.refresh_from_db()
    assert image.status == Status.PENDING_DELETE


def test_purge_images_reports_count(alice, settings):
    image = services.image_delete(image=services.image_create(actor=alice), actor=alice)
    Image.objects.filter(pk=image.pk).update(deleted_at=timezone.now() - timedelta(days=365))
    assert _run("purge_images") == "purged 1 deleted image records\n"
    assert not Image.objects.filter(pk=image.pk).exists()


def test_create_token_prints_the_users_token(alice):
    key = _run("create_token", "alice").strip()
    assert Token.objects.get(user=alice).key == key
    assert _run("create_token", "alice").strip() == key  # the same token again


def test_create_token_unknown_user_refused_without_create(django_user_model):
    with pytest.raises(CommandError, match="No user 'dave'; pass --create"):
        _run("create_token", "dave")
    assert not django_user_model.objects.filter(username="dave").exists()


def test_create_token_creates_staff_user(django_user_model):
    key = _run("create_token", "dave", "--create", "--staff").strip()
    user = django_user_model.objects.get(username="dave")
    assert (user.is_staff, user.auth_token.key) == (True, key)


def test_ensure_admin_generates_password_once(tmp_path, settings, django_user_model, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    first = _run("ensure_admin")
    password = (tmp_path / "admin_password").read_text().strip()
    assert f"with password {password!r}" in first
    assert django_user_model.objects.get(username="admin").check_password(password)
    again = _run("ensure_admin")
    assert "password in" in again and password not in again


def test_verify_store_ok_exits_zero(alice):
    services.image_upload(
        image=services.image_create(actor=alice, disk_format="raw", container_format="bare"),
        actor=alice,
        stream=io.BytesIO(b"ok"),
    )
    assert _run("verify_store", "--rehash") == "store ok\n"


def test_verify_store_problems_exit_nonzero(alice, image_store):
    image = services.image_upload(
        image=services.image_create(actor=alice, disk_format="raw", container_format="bare"),
        actor=alice,
        stream=io.BytesIO(b"ok"),
    )
    (image_store / str(image.pk)).unlink()
    (image_store / "stray").write_bytes(b"x")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 orphaned, 1 missing, 0 corrupt"):
        call_command("verify_store", stdout=out)
    assert out.getvalue().splitlines() == [
        "orphan: stray",
        f"missing: image {image.pk} has no data in the store",
    ]


def test_verify_store_remove_orphans_cleans_up(image_store):
    image_store.mkdir(exist_ok=True)
    (image_store / "stray").write_bytes(b"x")
    out = io.StringIO()
    call_command("verify_store", "--remove-orphans", stdout=out)
    assert out.getvalue() == "orphan: stray (removed)\nstore ok: 1 orphans removed\n"
    assert not (image_store / "stray").exists()


def test_scrub_images_daemon_stops_cleanly_on_sigterm(registry):
    """systemd's stop (SIGTERM) ends the daemon between passes, with exit status 0."""
    import signal
    import subprocess
    import sys

    from tests.live import ROOT

    daemon = subprocess.Popen(
        [sys.executable, "manage.py", "scrub_images", "--daemon"],
        cwd=ROOT,
        env={**registry.env, "IMAGES_SCRUB_WAKEUP_SECONDS": "3600"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = daemon.stdout.readline()
        assert first.startswith("scrubbed 0, failed 0"), first
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0  # not -15: it was not killed mid-pass
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.communicate()
