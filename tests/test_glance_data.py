"""import_glance's bytes (images/services/glance_data.py) where no Ceph is needed:
Glance's rbd:// forms, and what an rbd:// location gets without a reachable Ceph or
an RBD store. tests/ceph_mode/test_import_glance_rbd.py copies and adopts them on a
real Ceph."""

import importlib.util
import io

import pytest
from django.core.management import CommandError, call_command

from images.glance_db import LOCATIONS
from images.models import Image
from images.services.glance_data import RBDLocation, Skip, parse_rbd
from tests.test_glance_import import FakeGlance

pytestmark = pytest.mark.django_db

FSID = "6f1d2b4e-0d4b-4f7e-9a53-1f0c2f0f9a11"


@pytest.fixture
def glance(tmp_path):
    return FakeGlance(tmp_path)


def _with_rbd_location(glance: FakeGlance, url: str) -> str:
    image_id = glance.add(status="active", size=5, checksum="0" * 32)
    with glance.engine.begin() as conn:
        conn.execute(
            LOCATIONS.insert().values(
                image_id=image_id, value=url, meta_data="{}", status="active", deleted=False
            )
        )
    return image_id


def _run_failing(*args) -> str:
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"1 image\(s\) not brought over"):
        call_command("import_glance", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_parse_rbd_reads_glance_store_forms():
    assert parse_rbd(f"rbd://{FSID}/images/abc/snap") == RBDLocation(FSID, "images", "abc", "snap")
    assert parse_rbd(f"rbd://{FSID}/my%2Fpool/a%20b/snap") == RBDLocation(
        FSID, "my/pool", "a b", "snap"
    )
    assert parse_rbd("rbd://abc", default_pool="glance") == RBDLocation(None, "glance", "abc", None)
    assert str(parse_rbd("rbd://abc")) == "images/abc"  # Glance's rbd_store_pool default


@pytest.mark.parametrize("url", ["rbd://", "rbd://a/b", f"rbd://{FSID}/images//snap"])
def test_parse_rbd_refuses_what_glance_store_refuses(url):
    with pytest.raises(Skip, match="is not an rbd:// location Glance writes"):
        parse_rbd(url)


def test_glance_data_rbd_copy_without_reachable_ceph_is_skipped_with_the_reason(
    glance, settings, tmp_path
):
    settings.IMAGES_RBD_CLIENT = {
        **settings.IMAGES_RBD_CLIENT,
        "conffile": str(tmp_path / "missing-ceph.conf"),
    }
    image_id = _with_rbd_location(glance, f"rbd://{FSID}/images/x/snap")
    out = _run_failing("--database-url", glance.url, "--copy-data")
    # Without Debian's rados module in .venv (a fresh clone before make test-ceph), that
    # is the reason; with it, the missing ceph.conf is.
    if importlib.util.find_spec("rados") is None:
        why = "The Ceph client modules are not installed (python3-rados, python3-rbd; "
    else:
        why = f"Cannot read the Ceph configuration {tmp_path / 'missing-ceph.conf'}"
    assert f"skipped {image_id}: RBD image images/x@snap: {why}" in out
    assert Image.objects.count() == 0


def test_glance_data_rbd_adopt_into_a_filesystem_store_is_refused(glance):
    url = f"rbd://{FSID}/images/x/snap"
    image_id = _with_rbd_location(glance, url)
    out = _run_failing("--database-url", glance.url, "--adopt-data")
    assert f"skipped {image_id}: {url} is not in our RBD pool; use --copy-data" in out
