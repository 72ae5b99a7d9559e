"""The `glance` CLI (python-glanceclient's shell) against the real server, unchanged."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

GLANCE = str(Path(sys.executable).parent / "glance")


@pytest.fixture
def glance(registry, tmp_path):
    home = tmp_path / "home"  # the CLI caches the schemas in ~/.glanceclient
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "OS_IMAGE_URL": registry.url,
        "OS_AUTH_TOKEN": registry.tokens["alice"],
        "PYTHONWARNINGS": "ignore",
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [GLANCE, *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        if check and done.returncode != 0:
            raise AssertionError(f"glance {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    return run


def _table(output: str) -> dict:
    """The CLI's two-column table as a dict (long values wrap onto more rows)."""
    rows: dict[str, str] = {}
    key = None
    for line in output.splitlines():
        if line.startswith("|") and not line.startswith("| Property"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) != 2:
                continue
            if cells[0]:
                key = cells[0]
                rows[key] = cells[1]
            elif key is not None:
                rows[key] += cells[1]
    return rows


def test_glance_cli_image_lifecycle_round_trip(glance, payload_file, tmp_path):
    path, data = payload_file()
    created = _table(
        glance(
            "image-create",
            "--name",
            "cli-image",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--file",
            str(path),
        ).stdout
    )
    image_id = created["id"]
    assert created["status"] == "active"
    assert created["checksum"] == hashlib.md5(data).hexdigest()
    assert created["os_hash_value"] == hashlib.sha512(data).hexdigest()

    listed = glance("image-list").stdout
    assert image_id in listed and "cli-image" in listed

    out = tmp_path / "out.raw"
    glance("image-download", image_id, "--file", str(out))
    assert out.read_bytes() == data

    glance("image-update", image_id, "--property", "os_distro=debian", "--name", "renamed")
    shown = _table(glance("image-show", image_id).stdout)
    assert shown["os_distro"] == "debian"
    assert shown["name"] == "renamed"

    glance("image-tag-update", image_id, "golden")
    assert "golden" in _table(glance("image-show", image_id).stdout)["tags"]

    glance("image-deactivate", image_id)
    assert _table(glance("image-show", image_id).stdout)["status"] == "deactivated"
    refused = glance("image-download", image_id, "--file", str(tmp_path / "no.raw"), check=False)
    assert refused.returncode != 0
    assert "403 Forbidden" in refused.stderr
    assert "deactivated" in refused.stderr

    glance("image-reactivate", image_id)
    assert _table(glance("image-show", image_id).stdout)["status"] == "active"

    glance("image-delete", image_id)
    gone = glance("image-show", image_id, check=False)
    assert gone.returncode != 0
    assert f"No image with an ID of '{image_id}' exists." in gone.stderr or "404" in gone.stderr


def test_glance_cli_upload_is_inspected(glance, disk_images):
    """A real qcow2 becomes active with qemu-img's virtual size; the same bytes
    claimed as vmdk are refused with Glance's message and the image stays queued."""
    qcow2 = disk_images["qcow2"]
    created = _table(
        glance(
            "image-create",
            "--name",
            "inspected",
            "--disk-format",
            "qcow2",
            "--container-format",
            "bare",
            "--file",
            str(qcow2.path),
        ).stdout
    )
    assert (created["status"], created["virtual_size"]) == ("active", str(qcow2.virtual_size))

    refused = glance(
        "image-create",
        "--name",
        "liar",
        "--disk-format",
        "vmdk",
        "--container-format",
        "bare",
        "--file",
        str(qcow2.path),
        check=False,
    )
    assert refused.returncode != 0
    assert "HTTP 415 Unsupported Media Type" in refused.stderr
    assert "Image disk_format vmdk does not match stream data qcow2" in refused.stderr
    liar = next(line for line in glance("image-list").stdout.splitlines() if "liar" in line)
    liar_id = liar.split("|")[1].strip()
    assert _table(glance("image-show", liar_id).stdout)["status"] == "queued"
