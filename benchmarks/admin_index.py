"""How long the admin index takes to render with its charts at 10,000 images and
their history: `python -m benchmarks.admin_index [--images N] [--database-url URL]`.

A scratch SQLite database (or the PostgreSQL one given) is migrated and seeded with
tests.factories.seeded_registry (about five history rows per image), then the index
is fetched through Django's test client as a superuser: median and worst of the
renders, and the SQL queries of one, of which the charts' own are a fixed few.
Not part of `make bench` (no server, no Glance to compare with)."""

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--renders", type=int, default=15)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="admin-index-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{scratch}/db.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glance_site.settings")
    os.environ.setdefault("IMAGES_STORE", f"{scratch}/images")
    os.environ.setdefault("SECRET_KEY", "admin-index-benchmark")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.utils import timezone

    from images import dashboard
    from images.models import ImageTransition
    from tests.factories import seeded_registry

    setup_test_environment()
    # No collectstatic here: the admin's CSS from the apps, unhashed, as in the tests.
    from django.conf import settings
    from django.test.utils import override_settings

    static = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    override_settings(STORAGES={**settings.STORAGES, "staticfiles": static}).enable()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    seeded_registry(args.images, now=timezone.now())
    print(
        f"seeded {args.images:,} images, {ImageTransition.objects.count():,} history rows "
        f"in {time.perf_counter() - started:.1f} s ({connection.vendor})"
    )
    admin = User.objects.create_superuser("bench", password="pw")
    client = Client()
    client.force_login(admin)

    def timed(call) -> list[float]:
        call()  # warm: templates, caches of the ORM
        runs = []
        for _ in range(args.renders):
            begun = time.perf_counter()
            call()
            runs.append((time.perf_counter() - begun) * 1000)
        return runs

    def index() -> None:
        assert client.get("/admin/").status_code == 200

    today = timezone.localdate()
    first = today - timedelta(days=dashboard.DAYS - 1)
    parts = [
        ("history moves", lambda: dashboard._moves_since(first)),
        ("scrub timeline", lambda: dashboard.scrub_timeline(today)),
        ("top owners", dashboard.top_owners),
        ("dashboard() aggregates", dashboard.dashboard),
        ("GET /admin/", index),
    ]
    for name, call in parts:
        runs = timed(call)
        print(f"{name:<24} median {statistics.median(runs):7.1f} ms  worst {max(runs):7.1f} ms")
    with CaptureQueriesContext(connection) as queries:
        index()
    print(f"GET /admin/ ran {len(queries)} SQL queries")
    if os.environ.get("PROFILE"):
        import cProfile
        import pstats

        with cProfile.Profile() as profile:
            index()
        pstats.Stats(profile).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main())
