"""import_glance on a Glance database made here (the tables of Glance's schema that it
reads, in SQLite): statuses, children, data copied or adopted, verification, reruns
and refusals. tests/glance_mode runs it against a real Glance."""

import contextlib
import hashlib
import io
import os
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from django.core.management import CommandError, call_command

from images import services, storage
from images.enums import LocationStatus, Operation, Status
from images.glance_db import IMAGES as GLANCE_IMAGES
from images.glance_db import (
    LOCATIONS,
    MEMBERS,
    PROPERTIES,
    TAGS,
    GlanceDatabase,
    _meta,
    engine_url,
    shown,
)
from images.models import Image, ImageMember, ImageTransition, RetentionRule

pytestmark = pytest.mark.django_db

CREATED = datetime(2024, 1, 2, 3, 4, 5)
UPDATED = datetime(2024, 2, 3, 4, 5, 6)
DELETED = datetime(2024, 3, 4, 5, 6, 7)


class FakeGlance:
    """A Glance database file and its file store, filled row by row."""

    def __init__(self, folder):
        self.path = folder / "glance.sqlite"
        self.store = folder / "glance-store"
        self.store.mkdir()
        self.url = f"sqlite:///{self.path}"
        self.engine = sa.create_engine(self.url)
        _meta.create_all(self.engine)
        self.next_id = 0

    def add(self, *, data: bytes | None = None, children=True, **fields) -> str:
        image_id = fields.pop("id", None) or f"00000000-0000-4000-8000-{self.next_id:012d}"
        self.next_id += 1
        row = {
            "id": image_id,
            "name": f"image-{self.next_id}",
            "status": "queued",
            "visibility": "shared",
            "protected": False,
            "os_hidden": False,
            "min_disk": 0,
            "min_ram": 0,
            "owner": "alice",
            "disk_format": "raw",
            "container_format": "bare",
            "created_at": CREATED,
            "updated_at": UPDATED,
            "deleted": False,
            **fields,
        }
        location_state = "pending_delete" if row["status"] == "pending_delete" else "active"
        child_deleted = {"deleted": row["deleted"], "deleted_at": row.get("deleted_at")}
        with self.engine.begin() as conn:
            if data is not None:
                path = self.store / image_id
                path.write_bytes(data)
                row.setdefault("size", len(data))
                row.setdefault("checksum", hashlib.md5(data).hexdigest())
                row.setdefault("os_hash_algo", "sha512")
                row.setdefault("os_hash_value", hashlib.sha512(data).hexdigest())
                conn.execute(
                    LOCATIONS.insert().values(
                        image_id=image_id,
                        value=f"file://{path}",
                        meta_data="{}",
                        status=location_state,
                        created_at=CREATED,
                        **child_deleted,
                    )
                )
            conn.execute(GLANCE_IMAGES.insert().values(**row))
            if children:
                conn.execute(
                    PROPERTIES.insert().values(
                        image_id=image_id, name="os_distro", value="debian", **child_deleted
                    )
                )
                conn.execute(TAGS.insert().values(image_id=image_id, value="web", **child_deleted))
                conn.execute(
                    TAGS.insert().values(
                        image_id=image_id, value="gone", deleted=True, deleted_at=UPDATED
                    )
                )
                conn.execute(
                    MEMBERS.insert().values(
                        image_id=image_id,
                        member="bob",
                        status="accepted",
                        created_at=CREATED,
                        updated_at=UPDATED,
                        **child_deleted,
                    )
                )
        return image_id


@pytest.fixture
def glance(tmp_path):
    return FakeGlance(tmp_path)


def _run(*args) -> str:
    out = io.StringIO()
    call_command("import_glance", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def test_import_glance_copies_active_image_with_children_and_times(glance):
    data = os.urandom(300_000)
    image_id = glance.add(status="active", data=data, name="web", protected=True, min_ram=512)
    out = _run("--database-url", glance.url, "--copy-data")
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.name, image.protected, image.min_ram) == (
        Status.ACTIVE,
        "web",
        True,
        512,
    )
    assert (image.created_at, image.updated_at) == (_aware(CREATED), _aware(UPDATED))
    assert image.checksum == hashlib.md5(data).hexdigest()
    assert list(image.tags.values_list("value", flat=True)) == ["web"]
    assert dict(image.properties.values_list("name", "value")) == {"os_distro": "debian"}
    member = ImageMember.objects.get(image=image)
    assert (member.member, member.status, member.updated_at) == ("bob", "accepted", _aware(UPDATED))
    location = image.locations.get()
    assert (location.url, location.in_store) == (image_id, True)
    with storage.open_data(location.url) as stored:
        assert stored.read() == data
    history = ImageTransition.objects.get(image=image)
    assert (history.source, history.target, history.operation, history.actor) == (
        "",
        "active",
        Operation.MIGRATE,
        "import_glance",
    )
    assert f"imported from Glance database sqlite:///{glance.path}: status active" in history.reason
    assert "imported 1 of 1 images (300000 bytes" in out
    assert "members 1, tags 1, properties 1, locations 1" in out


def test_import_glance_brings_every_status(glance):
    ids = {s: glance.add(status=s) for s in ("queued", "saving", "importing", "killed")}
    ids["deactivated"] = glance.add(status="deactivated", data=b"d" * 10)
    ids["pending_delete"] = glance.add(
        status="pending_delete", data=b"p" * 10, deleted=True, deleted_at=DELETED
    )
    ids["deleted"] = glance.add(status="deleted", deleted=True, deleted_at=DELETED, children=False)
    out = _run("--database-url", glance.url, "--copy-data")
    statuses = dict(Image.objects.values_list("pk", "status"))
    assert {s: statuses[Image._meta.pk.to_python(i)] for s, i in ids.items()} == {s: s for s in ids}
    pending = Image.objects.get(pk=ids["pending_delete"])
    assert (pending.deleted_at, pending.status_before_delete) == (_aware(DELETED), "active")
    assert pending.locations.get().status == LocationStatus.PENDING_DELETE
    # image_destroy soft-deleted its children at its own deleted_at: a restore needs them.
    assert list(pending.tags.values_list("value", flat=True)) == ["web"]
    saving = Image.objects.get(pk=ids["saving"])
    assert saving.upload_heartbeat_at == _aware(UPDATED)
    assert "1 deleted in Glance: brought over as deleted" in out
    restored = services.image_restore(image=pending, actor="operator")
    assert restored.status == Status.ACTIVE


def test_import_glance_pending_delete_keeps_the_retention_rule_from_glances_delete(glance):
    RetentionRule.objects.create(name="web", tag="web", retention=timedelta(days=90))
    kept = glance.add(status="pending_delete", data=b"p" * 10, deleted=True, deleted_at=DELETED)
    _run("--database-url", glance.url, "--copy-data")
    image = Image.objects.get(pk=kept)
    assert image.retained_until == _aware(DELETED) + timedelta(days=90)


def test_import_glance_second_run_changes_nothing(glance):
    glance.add(status="active", data=b"x" * 1000)
    glance.add(status="queued")
    _run("--database-url", glance.url, "--copy-data")
    before = (Image.objects.count(), ImageTransition.objects.count(), storage.list_names())
    out = _run("--database-url", glance.url, "--copy-data")
    after = (Image.objects.count(), ImageTransition.objects.count(), storage.list_names())
    assert after == before
    assert "imported 0 of 2 images" in out
    assert "already imported 2, skipped 0" in out


def test_import_glance_reports_changed_since_imported(glance):
    image_id = glance.add(status="queued")
    _run("--database-url", glance.url)
    with glance.engine.begin() as conn:
        conn.execute(GLANCE_IMAGES.update().values(updated_at=datetime(2025, 1, 1)))
    out = _run("--database-url", glance.url)
    assert f"{image_id}: changed in Glance since it was imported" in out


def test_import_glance_checksum_mismatch_is_skipped_and_bytes_removed(glance):
    bad = glance.add(status="active", data=b"real bytes", checksum="0" * 32)
    good = glance.add(status="active", data=b"fine")
    with pytest.raises(CommandError, match="1 image\\(s\\) not brought over"):
        _run("--database-url", glance.url, "--copy-data")
    assert list(Image.objects.values_list("pk", flat=True)) == [Image._meta.pk.to_python(good)]
    assert storage.list_names() == [good]
    assert services.store_verify().clean
    assert not Image.objects.filter(pk=bad).exists()


def test_import_glance_without_data_flag_refuses_active_images(glance):
    active = glance.add(status="active", data=b"abc")
    glance.add(status="active", size=0, checksum=None)  # no data at all: nothing to refuse
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_glance", "--database-url", glance.url, stdout=out)
    assert (
        f"skipped {active}: active with data in Glance's store: use --copy-data or --adopt-data"
        in out.getvalue()
    )
    assert Image.objects.count() == 1


def test_import_glance_adopt_uses_files_inside_our_store(glance, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "images": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(glance.store)},
        },
    }
    data = os.urandom(5000)
    image_id = glance.add(status="active", data=data)
    _run("--database-url", glance.url, "--adopt-data")
    image = Image.objects.get(pk=image_id)
    assert image.locations.get().url == image_id
    found = services.image_download(image=image, actor="operator")
    assert found.local_path() == str(glance.store / image_id)
    assert os.listdir(glance.store) == [image_id]  # no copy made
    assert services.store_verify(rehash=True).clean


def test_import_glance_adopt_refuses_files_outside_our_store(glance):
    image_id = glance.add(status="active", data=b"abc")
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_glance", "--database-url", glance.url, "--adopt-data", stdout=out)
    assert f"skipped {image_id}: {glance.store / image_id} is not inside IMAGES_STORE" in (
        out.getvalue()
    )
    assert Image.objects.count() == 0


def test_import_glance_dry_run_changes_nothing(glance):
    glance.add(status="active", data=b"abc")
    glance.add(status="queued")
    out = _run("--database-url", glance.url, "--copy-data", "--dry-run")
    assert "would import 2 of 2 images (3 bytes" in out
    assert Image.objects.count() == 0
    assert storage.list_names() == []


def test_import_glance_http_location_is_kept_external(glance):
    image_id = glance.add(status="active", size=10)
    with glance.engine.begin() as conn:
        conn.execute(
            LOCATIONS.insert().values(
                image_id=image_id,
                value="https://example.org/disk.img",
                meta_data="{}",
                status="active",
                deleted=False,
            )
        )
    out = _run("--database-url", glance.url)
    location = Image.objects.get(pk=image_id).locations.get()
    assert (location.url, location.in_store) == ("https://example.org/disk.img", False)
    assert f"{image_id}: kept external location https://example.org/disk.img" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--copy-data", "--adopt-data"], "--copy-data and --adopt-data exclude each other"),
        (["--database-url", "sqlite:////nonexistent/glance.sqlite"], "Cannot read the Glance"),
        (["--database-url", "not a url"], "Not a database URL"),
    ],
)
def test_import_glance_bad_input_one_line(glance, args, message):
    if "--database-url" not in args:
        args = ["--database-url", glance.url, *args]
    with pytest.raises(CommandError, match=message) as caught:
        _run(*args)
    assert "\n" not in str(caught.value)
    assert Image.objects.count() == 0


def test_import_glance_refuses_database_without_glance_schema(tmp_path):
    path = tmp_path / "other.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE images (id TEXT)").connection.commit()
    with pytest.raises(CommandError, match="is not a Glance database this import reads: images"):
        _run("--database-url", f"sqlite:///{path}")


def test_glance_db_urls_read_only_and_password_hidden():
    assert str(engine_url("postgresql://u:p@db/glance").drivername) == "postgresql+psycopg"
    assert str(engine_url("mysql://u:p@db/glance").drivername) == "mysql+pymysql"
    assert engine_url("sqlite:////x/glance.sqlite").query == {"mode": "ro", "uri": "true"}
    assert (
        shown("mysql+pymysql://glance:secret@db/glance") == "mysql+pymysql://glance:***@db/glance"
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_import_glance_progress_on_a_terminal_only(glance):
    glance.add(status="queued")
    glance.add(status="active", data=b"x" * 2048)
    terminal = Terminal()
    call_command(
        "import_glance",
        "--database-url",
        glance.url,
        "--copy-data",
        stdout=io.StringIO(),
        stderr=terminal,
    )
    assert "\r2/2 images, " in terminal.getvalue()
    assert terminal.getvalue().endswith("MiB/s\n")
    piped = io.StringIO()
    call_command("import_glance", "--database-url", glance.url, stdout=io.StringIO(), stderr=piped)
    assert piped.getvalue() == ""


@pytest.fixture
def postgres_glance(tmp_path):
    """A Glance database on DATABASE_URL's PostgreSQL server (the PostgreSQL pass), as
    operators name it: a bare postgres:// URL."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip("the PostgreSQL pass reads a Glance database on PostgreSQL")
    import psycopg

    from tests.live import _postgres_database

    glance_url, drop = _postgres_database(url)
    try:
        fake = FakeGlance.__new__(FakeGlance)
        fake.store = tmp_path / "glance-store"
        fake.store.mkdir()
        fake.url, fake.next_id = glance_url, 0
        fake.engine = sa.create_engine(engine_url(glance_url))
        _meta.create_all(fake.engine)
        yield fake
    finally:
        fake.engine.dispose()
        with contextlib.suppress(psycopg.Error):
            drop()


def test_import_glance_reads_postgresql_read_only(postgres_glance):
    image_id = postgres_glance.add(status="active", data=b"from postgres")
    database = GlanceDatabase(postgres_glance.url)
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
    database.close()
    out = _run("--database-url", postgres_glance.url, "--copy-data")
    assert "imported 1 of 1 images (13 bytes" in out
    assert Image.objects.get(pk=image_id).tags.get().value == "web"


def test_import_glance_stale_saving_image_is_killed_by_the_janitor(glance):
    image_id = glance.add(status="saving", updated_at=datetime(2024, 1, 1))
    _run("--database-url", glance.url)
    report = services.images_kill_stale_uploads()
    assert [str(pk) for pk in report.killed] == [image_id]
    assert Image.objects.get(pk=image_id).status == Status.KILLED
