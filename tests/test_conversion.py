"""images/conversion.py on real images made by qemu-img: the converted disk holds the
same guest data, the refusals of Glance's conversion plugin hold, and a failed or
refused conversion leaves no file behind."""

import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from images import conversion
from images.conversion import ConversionFailed, convert, digest_file
from images.errors import FormatMismatch, UnsafeImage
from tests.test_settings import _check as check_settings

MiB = 1024 * 1024
VIRTUAL_SIZE = 2 * MiB
# Glance's disk_format -> the qemu-img driver that writes it.
SOURCES = {"qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx", "vdi": "vdi"}


@pytest.fixture
def qemu_img():
    """Every test that runs qemu-img starts from `raw_disk`, which asks for this."""
    if shutil.which("qemu-img") is None:
        message = "qemu-img not found: apt-get install qemu-utils"
        if os.environ.get("REQUIRE_QEMU") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def raw_disk(qemu_img, tmp_path) -> Path:
    """A raw disk: text, random bytes, then zeros (so sparse formats skip clusters)."""
    text = b"conversion test guest data\n" * 4096
    noise = random.Random("conversion").randbytes(MiB // 2)
    path = tmp_path / "guest.raw"
    path.write_bytes((text + noise).ljust(VIRTUAL_SIZE, b"\0"))
    return path


@pytest.fixture
def output_dir(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _qemu_img(folder: Path, *args: str) -> None:
    # Relative names, from the folder: images name their backing or data file as a
    # tenant's upload would.
    subprocess.run(["qemu-img", *args], cwd=folder, check=True, capture_output=True)


def _image(raw_disk: Path, driver: str, name: str, *options: str) -> Path:
    _qemu_img(raw_disk.parent, "convert", "-f", "raw", "-O", driver, *options, raw_disk.name, name)
    return raw_disk.parent / name


def _virtual_size(path: Path, driver: str) -> int:
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", "-f", driver, str(path)],
        check=True,
        capture_output=True,
    )
    return json.loads(info.stdout)["virtual-size"]


def _same_guest_data(a: Path, a_driver: str, b: Path, b_driver: str) -> bool:
    result = subprocess.run(
        ["qemu-img", "compare", "-f", a_driver, "-F", b_driver, str(a), str(b)],
        capture_output=True,
    )
    return result.returncode == 0


@pytest.mark.parametrize("source_format", sorted(SOURCES))
def test_conversion_to_raw_keeps_the_guest_data(raw_disk, output_dir, source_format):
    source = _image(raw_disk, SOURCES[source_format], f"guest.{source_format}")

    result = convert(source, source_format, "raw", output_dir)

    assert (result.format, result.source_format, result.converted) == ("raw", source_format, True)
    assert result.path.parent == output_dir.resolve()
    assert _same_guest_data(source, SOURCES[source_format], result.path, "raw")
    # A VHD's disk rounds up to whole cylinders: the source's size, not the raw file's.
    assert result.virtual_size == _virtual_size(source, SOURCES[source_format])
    assert result.virtual_size == result.path.stat().st_size
    assert source.exists()  # the caller decides when the original goes


@pytest.mark.parametrize("target_format", ["qcow2", "vmdk"])
def test_conversion_from_raw_writes_the_target_format(raw_disk, output_dir, target_format):
    result = convert(raw_disk, "raw", target_format, output_dir)

    assert (result.format, result.converted) == (target_format, True)
    assert _same_guest_data(raw_disk, "raw", result.path, target_format)
    assert result.virtual_size == VIRTUAL_SIZE
    assert result.path.read_bytes()[:4] != raw_disk.read_bytes()[:4]


def test_conversion_digest_is_the_upload_hashes_of_the_output(raw_disk, output_dir):
    source = _image(raw_disk, "qcow2", "guest.qcow2")
    result = convert(source, "qcow2", "raw", output_dir)
    data = result.path.read_bytes()

    assert digest_file(result.path) == (
        len(data),
        hashlib.md5(data).hexdigest(),
        hashlib.sha512(data).hexdigest(),
    )


def test_conversion_digest_reads_files_larger_than_a_chunk(tmp_path):
    path = tmp_path / "big"
    data = random.Random("digest").randbytes(3 * MiB + 17)
    path.write_bytes(data)

    assert digest_file(path) == (
        len(data),
        hashlib.md5(data).hexdigest(),
        hashlib.sha512(data).hexdigest(),
    )


def test_conversion_same_format_is_skipped_and_says_so(raw_disk, output_dir):
    source = _image(raw_disk, "qcow2", "guest.qcow2")

    result = convert(source, "qcow2", "qcow2", output_dir)

    assert (result.path, result.format, result.converted) == (source, "qcow2", False)
    assert result.reason == "the data is already qcow2"
    assert result.virtual_size == VIRTUAL_SIZE
    assert list(output_dir.iterdir()) == []


def test_conversion_iso_is_kept_as_glance_keeps_it(tmp_path, output_dir):
    iso = tmp_path / "disc.iso"
    descriptor = b"\x01CD001\x01".ljust(2048, b"\0")
    iso.write_bytes((bytes(32 * 1024) + descriptor).ljust(64 * 1024, b"\0"))

    result = convert(iso, "iso", "raw", output_dir)

    assert (result.format, result.converted, result.reason) == (
        "iso",
        False,
        "an ISO image is not converted",
    )
    assert list(output_dir.iterdir()) == []


def test_conversion_qcow2_declared_raw_is_refused(raw_disk, output_dir):
    # qemu-img reading it as raw would copy the qcow2 container as if it were a disk.
    source = _image(raw_disk, "qcow2", "guest.qcow2")

    with pytest.raises(FormatMismatch, match=r"disk_format raw does not match its data \(qcow2\)"):
        convert(source, "raw", "qcow2", output_dir)
    assert list(output_dir.iterdir()) == []


def test_conversion_raw_declared_qcow2_is_refused(raw_disk, output_dir):
    with pytest.raises(FormatMismatch, match="qcow2"):
        convert(raw_disk, "qcow2", "raw", output_dir)
    assert list(output_dir.iterdir()) == []


def test_conversion_backing_file_is_refused(raw_disk, output_dir):
    overlay = raw_disk.parent / "overlay.qcow2"
    _qemu_img(
        raw_disk.parent, "create", "-f", "qcow2", "-F", "raw", "-b", raw_disk.name, "overlay.qcow2"
    )

    with pytest.raises(UnsafeImage, match="backing_file") as refused:
        convert(overlay, "qcow2", "raw", output_dir)
    assert refused.value.checks == ["backing_file"]
    assert list(output_dir.iterdir()) == []


def test_conversion_external_data_file_is_refused(raw_disk, output_dir):
    source = _image(raw_disk, "qcow2", "external.qcow2", "-o", "data_file=external.data")

    with pytest.raises(UnsafeImage, match="data_file") as refused:
        convert(source, "qcow2", "raw", output_dir)
    assert refused.value.checks == ["data_file"]
    assert list(output_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "check"),
    [
        (("-F", "raw", "-b", "guest.raw"), "backing_file"),
        (("-o", "data_file=external.data"), "data_file"),
    ],
)
def test_conversion_qemu_img_info_refuses_what_the_inspectors_would_miss(raw_disk, options, check):
    # The inspectors refuse these first; qemu-img's own reading is the second line.
    _qemu_img(raw_disk.parent, "create", "-f", "qcow2", *options, "unsafe.qcow2", "2M")

    with pytest.raises(UnsafeImage) as refused:
        conversion._checked_virtual_size(raw_disk.parent / "unsafe.qcow2", "qcow2")
    assert refused.value.checks == [check]


def test_conversion_disk_holding_another_image_is_refused_after_converting(raw_disk, output_dir):
    # A qcow2 whose guest disk is a qcow2 file: converted to raw it would be a qcow2.
    inner = _image(raw_disk, "qcow2", "inner.qcow2")
    outer = raw_disk.parent / "outer.qcow2"
    _qemu_img(raw_disk.parent, "convert", "-f", "raw", "-O", "qcow2", inner.name, outer.name)

    with pytest.raises(UnsafeImage, match="converted to raw reads as qcow2"):
        convert(outer, "qcow2", "raw", output_dir)
    assert list(output_dir.iterdir()) == []


def test_conversion_unconvertible_format_is_refused(raw_disk, output_dir):
    with pytest.raises(ConversionFailed, match="disk_format ami cannot be converted"):
        convert(raw_disk, "ami", "raw", output_dir)


def test_conversion_failing_qemu_img_leaves_nothing(raw_disk, output_dir, settings):
    source = _image(raw_disk, "qcow2", "guest.qcow2")
    settings.IMAGES_QEMU_IMG = "/bin/false"

    with pytest.raises(ConversionFailed, match="qemu-img info failed: exit status 1"):
        convert(source, "qcow2", "raw", output_dir)
    assert list(output_dir.iterdir()) == []


def _fake_qemu_img(tmp_path: Path, on_convert: str) -> str:
    """A qemu-img that runs the real one but does `on_convert` instead of converting."""
    script = tmp_path / "qemu-img"
    real = shutil.which("qemu-img")
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = convert ]; then {on_convert}; fi\nexec {real} "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def test_conversion_failing_midway_removes_the_partial_output(
    raw_disk, output_dir, settings, tmp_path
):
    source = _image(raw_disk, "qcow2", "guest.qcow2")
    # Writes half a disk to the output (the last argument), then fails.
    settings.IMAGES_QEMU_IMG = _fake_qemu_img(
        tmp_path,
        'for last; do :; done; head -c 1048576 /dev/zero > "$last"; '
        "echo 'qemu-img: error while writing at byte 1048576: No space left' >&2; exit 1",
    )

    with pytest.raises(ConversionFailed) as failed:
        convert(source, "qcow2", "raw", output_dir)
    assert str(failed.value) == (
        "qemu-img convert failed: qemu-img: error while writing at byte 1048576: No space left"
    )
    assert list(output_dir.iterdir()) == []


def test_conversion_taking_too_long_is_stopped(
    raw_disk, output_dir, settings, tmp_path, monkeypatch
):
    source = _image(raw_disk, "qcow2", "guest.qcow2")
    settings.IMAGES_QEMU_IMG = _fake_qemu_img(tmp_path, "exec sleep 60")
    monkeypatch.setattr(conversion, "CONVERT_TIMEOUT", 1)

    with pytest.raises(ConversionFailed, match="qemu-img convert took more than 1 s"):
        convert(source, "qcow2", "raw", output_dir)
    assert list(output_dir.iterdir()) == []


def test_conversion_qemu_img_info_runs_under_glance_memory_limit(raw_disk, settings, tmp_path):
    # A header crafted to make qemu-img allocate without bound, played by a script.
    hungry = tmp_path / "hungry-qemu-img"
    hungry.write_text("#!/usr/bin/env python3\nbytearray(2 * 1024**3)\n")
    hungry.chmod(0o755)
    settings.IMAGES_QEMU_IMG = str(hungry)

    with pytest.raises(ConversionFailed, match="qemu-img info failed: MemoryError"):
        conversion._checked_virtual_size(raw_disk, "raw")


def test_conversion_qemu_img_info_runs_under_glance_cpu_limit(raw_disk, settings, tmp_path):
    spinning = tmp_path / "spinning-qemu-img"
    spinning.write_text("#!/usr/bin/env python3\nwhile True:\n    pass\n")
    spinning.chmod(0o755)
    settings.IMAGES_QEMU_IMG = str(spinning)

    with pytest.raises(ConversionFailed, match=r"qemu-img info was killed \(SIGKILL\)"):
        conversion._checked_virtual_size(raw_disk, "raw")


def test_conversion_missing_qemu_img_is_named(raw_disk, output_dir, settings):
    settings.IMAGES_QEMU_IMG = "/nonexistent/qemu-img"

    with pytest.raises(ConversionFailed, match=r"qemu-img not found \(/nonexistent/qemu-img\)"):
        convert(raw_disk, "raw", "qcow2", output_dir)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IMAGES_IMPORT_CONVERT_TO": "vhd"}, "IMAGES_IMPORT_CONVERT_TO must be empty or one of"),
        (
            {"IMAGES_IMPORT_CONVERT_TO": "raw", "IMAGES_DISK_FORMATS": "qcow2,vmdk"},
            "IMAGES_IMPORT_CONVERT_TO must be empty or one of qcow2, vmdk",
        ),
    ],
)
def test_conversion_setting_outside_glance_targets_stops_startup(tmp_path, env, message):
    result = check_settings(tmp_path, **env)

    assert result.returncode != 0
    assert message in result.stderr


def test_conversion_setting_raw_starts(tmp_path):
    result = check_settings(tmp_path, IMAGES_IMPORT_CONVERT_TO="raw")

    assert result.returncode == 0, result.stderr
