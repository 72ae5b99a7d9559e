"""Real disk images of every format the registry must recognise, for the tests of
in-flight format inspection.

`build_all(folder)` makes them with the tools that make them in the wild (qemu-img,
qemu-io, genisoimage); the session fixture `disk_images` makes them once a test
session. The qemu-img images hold the same 4 MiB of guest data (text, then random
bytes, then zeros), so compressed and sparse formats carry real clusters; the ISO holds
part of it as a file, the GPT disk in its partition. Each file stays under 10 MiB.
Auxiliary files (a backing file, a data file, a flat extent) lie beside the images
and are referred to by relative name, as they would be in a tenant's upload.

A dangerous image is one the registry must refuse; `why` names the danger. A GUID
partition table is written here byte by byte (it is four small structures and two
CRC32s), so no partitioning tool has to be installed on every machine for one table.
"""

import json
import os
import random
import shutil
import struct
import subprocess
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

MiB = 1024 * 1024
VIRTUAL_SIZE = 4 * MiB
LUKS_PASSPHRASE = "disk-images-luks"
# Each tool and the Debian package that has it.
TOOLS = {"qemu-img": "qemu-utils", "qemu-io": "qemu-utils", "genisoimage": "genisoimage"}
# Glance's disk_format where qemu-img names the format otherwise.
QEMU_FORMATS = {"vhd": "vpc", "iso": "raw", "gpt": "raw"}


@dataclass(frozen=True)
class DiskImage:
    name: str
    path: Path
    disk_format: str  # what the bytes truly are, as Glance names it
    virtual_size: int  # as `qemu-img info` reports it (the byte size for iso and gpt)
    dangerous: bool = False
    why: str = ""  # for a dangerous image: the danger a safety check must catch


@pytest.fixture(scope="session")
def disk_images(tmp_path_factory) -> dict[str, DiskImage]:
    """Every image of `build_all`, built once a session; skipped where the tools are
    missing, unless REQUIRE_QEMU=1 (CI) makes that a failure."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        packages = " ".join(sorted({TOOLS[tool] for tool in missing}))
        message = f"{', '.join(missing)} not found: apt-get install {packages}"
        if os.environ.get("REQUIRE_QEMU") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return build_all(tmp_path_factory.mktemp("disk-images"))


def build_all(folder: Path) -> dict[str, DiskImage]:
    """Build every image in `folder`, keyed by name."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "raw.img").write_bytes(_guest_data())
    _convert(folder, "qcow2.qcow2", "qcow2")
    _convert(folder, "qcow2-compressed.qcow2", "qcow2", "-c")
    overlay = ["-f", "qcow2", "-F", "raw", "-b", "raw.img", "qcow2-backing-file.qcow2"]
    _run(folder, "qemu-img", "create", "-q", *overlay)
    _run(folder, "qemu-io", "-c", "write -P 0xab 0 64k", *overlay[:2], overlay[-1])
    _convert(folder, "qcow2-data-file.qcow2", "qcow2", "-o", "data_file=qcow2-data-file.data")
    _convert(folder, "vmdk-monolithic-sparse.vmdk", "vmdk")
    _convert(folder, "vmdk-stream-optimized.vmdk", "vmdk", "-o", "subformat=streamOptimized")
    # A text descriptor plus vmdk-flat-descriptor-flat.vmdk; the tenant uploads the descriptor.
    _convert(folder, "vmdk-flat-descriptor.vmdk", "vmdk", "-o", "subformat=monolithicFlat")
    # qemu-img pads the descriptor with NULs to 512 bytes; a hand-written one has no padding.
    descriptor = (folder / "vmdk-flat-descriptor.vmdk").read_bytes().rstrip(b"\0")
    (folder / "vmdk-flat-descriptor-text.vmdk").write_bytes(descriptor)
    _convert(folder, "vhd.vhd", "vpc")
    # The smallest blocks and log: a VHDX with the defaults is 16 MiB here.
    _convert(folder, "vhdx.vhdx", "vhdx", "-o", "block_size=1M,log_size=1M")
    _convert(folder, "vdi.vdi", "vdi")
    _convert(folder, "qed.qed", "qed")
    _iso(folder, "iso.iso")
    _gpt_disk(folder / "gpt.img")
    _iso(folder, "iso-gpt.iso")
    _add_gpt_to_iso(folder / "iso-gpt.iso")
    # Most of the build's two seconds: qemu-img benchmarks PBKDF2 whatever iter-time says.
    secret = f"secret,id=passphrase,data={LUKS_PASSPHRASE}"
    options = "key-secret=passphrase,iter-time=10"
    _convert(folder, "luks.luks", "luks", "--object", secret, "-o", options)

    flat_extent = "vmdk descriptor points at a flat extent outside the image"
    table = [
        # name, file, disk_format, why it must be refused
        ("raw", "raw.img", "raw", ""),
        ("qcow2", "qcow2.qcow2", "qcow2", ""),
        ("qcow2-compressed", "qcow2-compressed.qcow2", "qcow2", ""),
        ("qcow2-backing-file", "qcow2-backing-file.qcow2", "qcow2", "qcow2 backing file"),
        ("qcow2-data-file", "qcow2-data-file.qcow2", "qcow2", "qcow2 data file"),
        ("vmdk-monolithic-sparse", "vmdk-monolithic-sparse.vmdk", "vmdk", ""),
        ("vmdk-stream-optimized", "vmdk-stream-optimized.vmdk", "vmdk", ""),
        ("vmdk-flat-descriptor", "vmdk-flat-descriptor.vmdk", "vmdk", flat_extent),
        ("vmdk-flat-descriptor-text", "vmdk-flat-descriptor-text.vmdk", "vmdk", flat_extent),
        ("vhd", "vhd.vhd", "vhd", ""),
        ("vhdx", "vhdx.vhdx", "vhdx", ""),
        ("vdi", "vdi.vdi", "vdi", ""),
        ("qed", "qed.qed", "qed", "qed is not allowed"),
        ("iso", "iso.iso", "iso", ""),
        ("gpt", "gpt.img", "gpt", ""),
        # Glance and Nova take a file that is both an ISO and a GPT disk for an ISO.
        ("iso-gpt", "iso-gpt.iso", "iso", ""),
        ("luks", "luks.luks", "luks", ""),
    ]
    return {
        name: _described(folder, name, file, disk_format, why=why)
        for name, file, disk_format, why in table
    }


def _guest_data() -> bytes:
    """What the guest sees: 256 KiB of text, 768 KiB of random bytes, then zeros.
    Seeded, so every session builds the same images. Text first, so the raw image
    cannot start with another format's magic bytes by chance."""
    text = b"disk-images guest data: text compresses, random bytes do not\n"
    head = (text * (256 * 1024 // len(text) + 1))[: 256 * 1024]
    noise = random.Random("disk-images").randbytes(768 * 1024)
    return (head + noise).ljust(VIRTUAL_SIZE, b"\0")


def _run(folder: Path, *args: str) -> str:
    # Run from the folder with relative names: the images then name their backing
    # file, data file and extent by relative path, and hold no temporary path.
    result = subprocess.run(args, cwd=folder, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _convert(folder: Path, output: str, qemu_format: str, *options: str) -> None:
    _run(folder, "qemu-img", "convert", "-f", "raw", "-O", qemu_format, *options, "raw.img", output)


def _described(folder: Path, name: str, file: str, disk_format: str, *, why: str = "") -> DiskImage:
    qemu_format = QEMU_FORMATS.get(disk_format, disk_format)
    info = json.loads(_run(folder, "qemu-img", "info", "--output=json", "-f", qemu_format, file))
    return DiskImage(
        name=name,
        path=folder / file,
        disk_format=disk_format,
        virtual_size=info["virtual-size"],
        dangerous=bool(why),
        why=why,
    )


def _iso(folder: Path, output: str) -> None:
    content = folder / "iso-content"
    content.mkdir(exist_ok=True)
    (content / "README.TXT").write_text("An ISO 9660 image built by tests/disk_images.py\n")
    (content / "GUEST.BIN").write_bytes(_guest_data()[: 256 * 1024])
    _run(
        folder,
        "genisoimage",
        "-quiet",
        "-V",
        "DISK-IMAGES",
        "-J",
        "-r",
        "-o",
        output,
        "iso-content",
    )


# GUID partition tables (UEFI 2.10, chapter 5).
SECTOR = 512
GPT_ENTRIES = 128  # the usual entry array: 128 entries of 128 bytes, 32 sectors
GPT_ENTRY_SIZE = 128
GPT_ARRAY_SECTORS = GPT_ENTRIES * GPT_ENTRY_SIZE // SECTOR
LINUX_FILESYSTEM = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
BASIC_DATA = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")


def _gpt_disk(path: Path) -> None:
    """A 4 MiB disk with one Linux partition from 1 MiB on, holding guest data."""
    disk = bytearray(VIRTUAL_SIZE)
    disk[MiB : 2 * MiB] = _guest_data()[:MiB]
    _write_gpt(disk, first_lba=MiB // SECTOR, type_guid=LINUX_FILESYSTEM, name="disk-images")
    path.write_bytes(disk)


def _add_gpt_to_iso(path: Path) -> None:
    """Make an ISO a GPT disk too, as isohybrid and xorriso do: the table goes into
    the ISO's 32 KiB system area, its backup into the zero padding genisoimage leaves
    at the end, and one partition spans the volume descriptors and data."""
    iso = bytearray(path.read_bytes())
    primary_end = (2 + GPT_ARRAY_SECTORS) * SECTOR
    backup_start = len(iso) - (1 + GPT_ARRAY_SECTORS) * SECTOR
    if any(iso[:primary_end]) or any(iso[backup_start:]):
        raise RuntimeError(f"{path.name}: no room for a GPT (system area or padding not empty)")
    _write_gpt(iso, first_lba=32 * 1024 // SECTOR, type_guid=BASIC_DATA, name="ISO9660")
    path.write_bytes(iso)


def _write_gpt(disk: bytearray, *, first_lba: int, type_guid: uuid.UUID, name: str) -> None:
    """Lay over `disk` a protective MBR, a GPT with one partition from `first_lba` to
    the last usable sector, and the backup GPT in the last sectors."""
    sectors = len(disk) // SECTOR
    first_usable = 2 + GPT_ARRAY_SECTORS
    last_usable = sectors - 2 - GPT_ARRAY_SECTORS
    backup_array_lba = sectors - 1 - GPT_ARRAY_SECTORS
    # GUIDs from the name: the same bytes every session.
    disk_guid = uuid.uuid5(uuid.NAMESPACE_URL, f"disk-images/{name}/disk")
    partition_guid = uuid.uuid5(uuid.NAMESPACE_URL, f"disk-images/{name}/partition")
    entry = struct.pack(
        "<16s16sQQQ72s",
        type_guid.bytes_le,
        partition_guid.bytes_le,
        first_lba,
        last_usable,
        0,  # attributes
        name.encode("utf-16-le"),
    )
    array = entry.ljust(GPT_ENTRIES * GPT_ENTRY_SIZE, b"\0")

    def header(my_lba: int, alternate_lba: int, array_lba: int) -> bytes:
        def packed(crc: int) -> bytes:
            return struct.pack(
                "<8sIIIIQQQQ16sQIII",
                b"EFI PART",
                0x00010000,  # revision 1.0
                92,  # header size
                crc,  # of the header, computed with this field zero
                0,
                my_lba,
                alternate_lba,
                first_usable,
                last_usable,
                disk_guid.bytes_le,
                array_lba,
                GPT_ENTRIES,
                GPT_ENTRY_SIZE,
                zlib.crc32(array),
            )

        return packed(zlib.crc32(packed(0))).ljust(SECTOR, b"\0")

    # The protective MBR: one partition of type 0xEE from sector 1 (CHS 0/2/0) on.
    disk[446:462] = struct.pack(
        "<B3sB3sII", 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1, min(sectors - 1, 0xFFFFFFFF)
    )
    disk[510:512] = b"\x55\xaa"
    disk[SECTOR : 2 * SECTOR] = header(1, sectors - 1, 2)
    disk[2 * SECTOR : first_usable * SECTOR] = array
    disk[backup_array_lba * SECTOR : (sectors - 1) * SECTOR] = array
    disk[(sectors - 1) * SECTOR :] = header(sectors - 1, 1, backup_array_lba)
