"""Converting an imported image's data to the operator's disk format with qemu-img:
Glance's `image_conversion` import plugin (`[image_conversion] output_format`).

The import worker calls `convert` on the local file it staged or downloaded, after
images/inspection.py accepted it. The steps are the plugin's, in its order
(glance/async_/flows/plugins/image_conversion.py):

1. inspect the file again and require the detected format to be the declared one
   (a GPT disk counts as raw; an ISO is never converted, and nothing else may be an
   ISO). Raw accepts any content at upload, but here a qcow2 declared raw would have
   qemu-img copy its container bytes as a disk: refused;
2. `qemu-img info -f <format>` under a CPU and address-space limit (a crafted header
   can make qemu-img spin or allocate without bound, Launchpad bug 1449062): its format must
   be the declared one, and an image naming a backing file or an external data file,
   or a VMDK of another create-type than Glance's `vmdk_allowed_types` default, is
   refused;
3. nothing more when the data is already in the target format;
4. `qemu-img convert -f <format> -O <target>`. `-f` is always given: letting qemu-img
   probe the format is how a "raw" image whose bytes are a qcow2 header naming a
   backing file has qemu-img read the host's files;
5. the output is inspected too, and must be the target format: a guest disk holding
   another image would otherwise come out as, say, a "raw" disk that is a qcow2.

Glance runs only `qemu-img info` under limits (1 GiB, 2 s of CPU), not `convert`,
whose CPU time grows with the image; here `convert` has a wall-clock timeout instead.

Glance keeps nothing of the original format: the plugin sets `disk_format` to the
target, `container_format` to bare, `size` and `virtual_size`, and no property (no
`os_glance_*` key names the source format). The issue asks for one; the caller sets it
from `Converted.source_format`.

The caller records the converted data's size and hashes with `digest_file`, the
hashing uploads use, and its virtual size from `Converted.virtual_size`.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from images.errors import FormatMismatch, InvalidInput, UnsafeImage
from images.ingest import CHUNK_SIZE, HASH_ALGO
from images.inspection import Inspection

# The formats Glance's plugin writes (its `output_format` choices).
TARGET_FORMATS = ("raw", "qcow2", "vmdk")
# Glance's disk_format -> qemu-img's driver, for the formats qemu-img reads and the
# inspectors know. ami, aki, ari and ploop are not converted (Glance fails them too).
QEMU_DRIVERS = {
    "raw": "raw",
    "qcow2": "qcow2",
    "vmdk": "vmdk",
    "vhd": "vpc",
    "vhdx": "vhdx",
    "vdi": "vdi",
}
ISO = "iso"
# Glance's [image_format] vmdk_allowed_types default: single-file, sparse-header
# VMDKs only; the other create-types name extents in other files.
VMDK_ALLOWED_TYPES = frozenset({"streamOptimized", "monolithicSparse"})
# glance.async_.utils.QEMU_IMG_PROC_LIMITS, for `qemu-img info`.
INFO_ADDRESS_SPACE = 1024**3
INFO_CPU_SECONDS = 2
# Wall clock: the CPU limit does not stop a qemu-img blocked on I/O.
INFO_TIMEOUT = 30
# A conversion still running after this is stuck, not slow (~10 MB/s for 100 GiB).
CONVERT_TIMEOUT = 3 * 3600
# Reads while inspecting a file: what Inspection needs is its first few KiB.
INSPECT_CHUNK = 64 * 1024

# Sets the limits, then becomes qemu-img (oslo.concurrency's prlimit does the same):
# a preexec_fn could deadlock a worker that runs threads.
_LIMITED_EXEC = (
    "import os, resource, sys\n"
    "space, cpu = int(sys.argv[1]), int(sys.argv[2])\n"
    "resource.setrlimit(resource.RLIMIT_AS, (space, space))\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


class ConversionFailed(InvalidInput):
    """qemu-img could not read or convert the data (or is missing, or took too long)."""


@dataclass(frozen=True)
class Converted:
    """The data to store: `path` in `format`, and what the image records of it."""

    path: Path  # the converted file, or the source itself when not converted
    format: str  # the image's disk_format from now on
    source_format: str  # the declared format before conversion (for the property)
    converted: bool
    reason: str  # why it was not converted; "" when it was
    virtual_size: int | None  # qemu-img's, of `path`; None for an ISO (not asked)


def convert(source: Path, source_format: str, target_format: str, directory: Path) -> Converted:
    """Convert `source`, declared `source_format`, to `target_format` in a new file in
    `directory`. Raises FormatMismatch or UnsafeImage when the data may not be
    converted, ConversionFailed when qemu-img fails; no output file is left then."""
    if target_format not in TARGET_FORMATS:
        raise ValueError(f"cannot convert to {target_format!r}: not one of {TARGET_FORMATS}")
    driver = QEMU_DRIVERS.get(source_format)
    if driver is None and source_format != ISO:
        raise ConversionFailed(f"Image disk_format {source_format} cannot be converted")
    source = source.resolve()  # absolute: qemu-img reads "proto:..." as a protocol
    detected = _inspected_format(source, source_format)
    if detected != source_format:
        raise FormatMismatch(
            f"Image disk_format {source_format} does not match its data ({detected}); "
            "not converting"
        )
    if driver is None:
        # Glance's plugin keeps an ISO as it is, whatever the target.
        return Converted(source, ISO, ISO, False, "an ISO image is not converted", None)
    virtual_size = _checked_virtual_size(source, driver)
    if source_format == target_format:
        reason = f"the data is already {target_format}"
        return Converted(source, source_format, source_format, False, reason, virtual_size)

    fd, name = tempfile.mkstemp(prefix=f"{source.name}.", suffix=f".{target_format}", dir=directory)
    os.close(fd)
    target = Path(name).resolve()
    try:
        _qemu_img(
            ["convert", "-f", driver, "-O", target_format, str(source), str(target)],
            timeout=CONVERT_TIMEOUT,
        )
        converted = _inspected_format(target, target_format)
        if converted != target_format:
            raise UnsafeImage(
                f"Image converted to {target_format} reads as {converted}: "
                "its disk holds another image",
                checks=["converted_format"],
            )
        converted_size = _checked_virtual_size(target, target_format)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return Converted(target, target_format, source_format, True, "", converted_size)


def digest_file(path: Path) -> tuple[int, str, str]:
    """The file's size, MD5 (Glance's `checksum`) and SHA-512 (`os_hash_value`) as
    hexadecimal, hashed as uploads are (images/ingest.py)."""
    md5, sha = hashlib.md5(), hashlib.new(HASH_ALGO)
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            size += len(chunk)
            md5.update(chunk)
            sha.update(chunk)
    return size, md5.hexdigest(), sha.hexdigest()


def _inspected_format(path: Path, disk_format: str) -> str:
    """What the format inspectors find in the file as `disk_format` (a GPT disk is
    raw, as in Glance); raises what an upload of it would raise."""
    inspection = Inspection(disk_format, "bare")
    with path.open("rb") as file:
        while not inspection.settled and (chunk := file.read(INSPECT_CHUNK)):
            inspection.feed(chunk)
    verdict = inspection.finish(path.stat().st_size)
    assert verdict is not None  # a bare container is always inspected
    return "raw" if verdict.detected == "gpt" else verdict.detected


def _checked_virtual_size(path: Path, driver: str) -> int:
    """`qemu-img info` of the file read as `driver`, refusing what Glance's plugin
    refuses; its virtual size."""
    output = _qemu_img(
        ["info", "--output=json", "-f", driver, str(path)],
        timeout=INFO_TIMEOUT,
        limits=(INFO_ADDRESS_SPACE, INFO_CPU_SECONDS),
    )
    try:
        info = json.loads(output)
    except ValueError:
        raise ConversionFailed("qemu-img info gave no readable description") from None
    if info.get("format") != driver:
        raise FormatMismatch(f"qemu-img reads the {driver} image as {info.get('format')}")
    if "backing-filename" in info:
        raise UnsafeImage(
            "Image failed safety checks (backing_file: it names a backing file)",
            checks=["backing_file"],
        )
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file") is not None:
        raise UnsafeImage(
            "Image failed safety checks (data_file: it names an external data file)",
            checks=["data_file"],
        )
    if driver == "vmdk" and specific.get("create-type") not in VMDK_ALLOWED_TYPES:
        raise UnsafeImage(
            f"Image failed safety checks (vmdk_create_type: {specific.get('create-type')} "
            f"is not one of {', '.join(sorted(VMDK_ALLOWED_TYPES))})",
            checks=["vmdk_create_type"],
        )
    return int(info["virtual-size"])


def _qemu_img(args: list[str], *, timeout: int, limits: tuple[int, int] | None = None) -> str:
    """Run qemu-img with `args`; its standard output, or ConversionFailed naming the
    command and qemu-img's last words."""
    executable = shutil.which(settings.IMAGES_QEMU_IMG)
    if executable is None:
        raise ConversionFailed(f"qemu-img not found ({settings.IMAGES_QEMU_IMG})")
    command = [executable, *args]
    if limits is not None:
        command = [sys.executable, "-c", _LIMITED_EXEC, *map(str, limits), *command]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ConversionFailed(f"qemu-img {args[0]} took more than {timeout} s") from None
    if result.returncode < 0:
        # The CPU limit (soft and hard are one: SIGKILL at once), or a kill from outside.
        signal_name = signal.Signals(-result.returncode).name
        raise ConversionFailed(f"qemu-img {args[0]} was killed ({signal_name})")
    if result.returncode:
        lines = result.stderr.strip().splitlines()
        why = lines[-1] if lines else f"exit status {result.returncode}"
        raise ConversionFailed(f"qemu-img {args[0]} failed: {why}")
    return result.stdout
