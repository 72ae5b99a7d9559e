"""The benchmark steps that run inside Django, against the scratch database and store.

    python -m benchmarks.tasks COMMAND '{"json": "arguments"}'

common.task() starts each one as a subprocess with the server's environment (VAR_DIR,
DATABASE_URL, ... of tests/live.py's running_registry, which has migrated the database
and made the users) and reads the last stdout line, ``RESULT {json}``. Seeding uses
bulk_create, never the API: 100,000 images through the API would take longer than
the whole benchmark may.
"""

import hashlib
import json
import os
import random
import sys
import time
import uuid
from datetime import timedelta

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glance_site.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from images import services, storage  # noqa: E402
from images.enums import LocationStatus, Visibility  # noqa: E402
from images.models import Image, ImageLocation, ImageProperty, ImageTag  # noqa: E402

USER = "alice"  # the API consumer whose lists are measured (benchmarks/common.py)
ADMIN = "admin"
SEED_PREFIX = "seed-"
SCRUB_PREFIX = "scrub-"
BATCH = 5000


def result(value) -> None:
    print("RESULT " + json.dumps(value), flush=True)


def _seed_batch(start: int, count: int, now) -> None:
    """`count` images as a busy registry has them: half the consumer's own, a quarter
    public, the rest private to others; mostly active; two tags and a property each."""
    rng = random.Random(start)
    images, tags, props = [], [], []
    for i in range(start, start + count):
        r = rng.random()
        if r < 0.5:
            owner, visibility = USER, rng.choice([Visibility.PRIVATE, Visibility.SHARED])
        elif r < 0.75:
            owner, visibility = f"project-{i % 97}", Visibility.PUBLIC
        else:
            owner, visibility = f"project-{i % 97}", Visibility.PRIVATE
        active = rng.random() < 0.9
        size = rng.randrange(1, 20 * 2**30) if active else None
        image = Image(
            id=uuid.uuid4(),
            name=f"{SEED_PREFIX}{i:07d}",
            visibility=visibility,
            owner=owner,
            disk_format="qcow2",
            container_format="bare",
            min_disk=rng.randrange(0, 40),
            min_ram=rng.randrange(0, 4096),
            created_at=now - timedelta(seconds=i * 37),
            updated_at=now - timedelta(seconds=i * 37),
        )
        if rng.random() < 0.9:  # mostly active: reached through the model's transitions
            size = rng.randrange(1, 20 * 2**30)
            image.begin_upload(now=now)
            image.finish_upload(
                size=size,
                checksum=f"{rng.getrandbits(128):032x}",
                os_hash_algo="sha512",
                os_hash_value=f"{rng.getrandbits(512):0128x}",
            )
            image.virtual_size = size
        images.append(image)
        tags += [ImageTag(image=image, value="bench"), ImageTag(image=image, value=f"t{i % 50}")]
        props.append(ImageProperty(image=image, name="hw_disk_bus", value="virtio"))
    with transaction.atomic():
        Image.objects.bulk_create(images)
        ImageTag.objects.bulk_create(tags)
        ImageProperty.objects.bulk_create(props)


def seed(args) -> dict:
    """Bring the seeded images up to `total`."""
    total = int(args["total"])
    # created_at is auto_now_add; the seed spreads it over time as a real registry has it.
    for name in ("created_at", "updated_at"):
        field = Image._meta.get_field(name)
        field.auto_now_add = field.auto_now = False
    have = Image.objects.filter(name__startswith=SEED_PREFIX).count()
    started = time.perf_counter()
    now = timezone.now()
    while have < total:
        count = min(BATCH, total - have)
        _seed_batch(have, count, now)
        have += count
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {"images": have, "seconds": time.perf_counter() - started}


def _captured(client: Client, path: str, **headers) -> dict:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path, **headers)
    sql = [q["sql"] for q in ctx.captured_queries]
    counts = [s for s in sql if "COUNT(" in s.upper()]
    return {
        "status": response.status_code,
        "queries": len(sql),
        "count_queries": counts,
        # A COUNT bounded by LIMIT (the admin's "10,000+") reads at most that many rows.
        "full_counts": [s for s in counts if " WHERE " not in s.upper() and " LIMIT " not in s],
        "sql": sql,
    }


def counts(args) -> dict:
    """SQL queries per request, captured in-process on the same database."""
    token = Token.objects.get(user__username=USER).key
    client = Client(headers={"X-Auth-Token": token})
    out = {}
    for limit in (25, 1000):
        client.get(f"/v2/images?limit={limit}")  # warm caches (content types, ...)
        out[f"list_{limit}"] = _captured(client, f"/v2/images?limit={limit}")
    first = client.get("/v2/images?limit=25").json()
    if first.get("next"):
        out["list_25_next_page"] = _captured(client, first["next"])
    admin = Client()
    admin.force_login(get_user_model().objects.get(username=ADMIN))
    admin.get("/admin/images/image/")
    out["admin_list"] = _captured(admin, "/admin/images/image/")
    return out


def scrub(args) -> dict:
    """`n` pending_delete images past their delay with a small file each, then one
    timed images_scrub_due()."""
    n = int(args["n"])
    size = int(args.get("size", 1024))
    past = timezone.now() - timedelta(seconds=settings.IMAGES_SCRUB_DELAY_SECONDS + 60)
    payload = os.urandom(size)
    checksum, sha512 = hashlib.md5(payload).hexdigest(), hashlib.sha512(payload).hexdigest()
    run = uuid.uuid4().hex[:8]
    images, locations = [], []
    for i in range(n):
        image = Image(
            id=uuid.uuid4(),
            name=f"{SCRUB_PREFIX}{run}-{i}",
            visibility=Visibility.PRIVATE,
            owner=USER,
            disk_format="raw",
            container_format="bare",
        )
        image.begin_upload(now=past)
        image.finish_upload(
            size=size, checksum=checksum, os_hash_algo="sha512", os_hash_value=sha512
        )
        image.mark_pending_delete(now=past)
        images.append(image)
        name = storage.object_name(image.id)
        path = storage.local_path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(payload)
        locations.append(
            ImageLocation(
                image=image, url=name, in_store=True, status=LocationStatus.PENDING_DELETE
            )
        )
    with transaction.atomic():
        Image.objects.bulk_create(images, batch_size=BATCH)
        ImageLocation.objects.bulk_create(locations, batch_size=BATCH)
    started = time.perf_counter()
    report = services.images_scrub_due()
    seconds = time.perf_counter() - started
    left = sum(os.path.exists(storage.local_path(str(i.id))) for i in images)
    return {
        "images": n,
        "scrubbed": len(report.scrubbed),
        "failed": len(report.failed),
        "files_left": left,
        "seconds": seconds,
        "per_second": len(report.scrubbed) / seconds if seconds else None,
    }


def put(args) -> dict:
    """storage.put from a local file, in-process: the store's own ceiling, no HTTP."""
    path, repeat = args["file"], int(args.get("repeat", 3))
    size = os.path.getsize(path)
    rates = []
    for _ in range(repeat):
        os.sync()
        with open(path, "rb", buffering=0) as stream:
            started = time.perf_counter()
            stored = storage.put(
                uuid.uuid4(),
                stream,
                declared_size=size,
                limit=2**50,
                on_limit=lambda n: RuntimeError(f"{n} bytes over the limit"),
            )
            rates.append(size / 2**20 / (time.perf_counter() - started))
        storage.delete(stored.name)
    return {"mib_per_s": rates}


COMMANDS = {"seed": seed, "counts": counts, "scrub": scrub, "put": put}

if __name__ == "__main__":
    command = sys.argv[1]
    arguments = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    result(COMMANDS[command](arguments))
