"""What an image's bytes really are, decided while they stream in.

oslo.utils' format inspectors (the ones Glance runs) read each chunk of an upload
beside the hashes. The rules are Glance's (`glance.location.ImageProxy.set_data`),
decided as early as the data allows instead of after the whole body is stored:

- the detected format must be the image's `disk_format`; `raw` accepts any content
  (recorded as what it really is), and formats no inspector knows (ami, aki, ari,
  ploop) accept content no inspector recognises. Else `FormatMismatch` (415);
- the detected format's safety checks must pass (a qcow2 naming a backing or data
  file, a VMDK descriptor pointing elsewhere, a banned format, a malformed MBR/GPT),
  else `UnsafeImage` (400) naming the failed checks;
- containers other than `bare` (ova, docker, ...) are not inspected, as in Glance.

Once every inspector has seen its header, the ones that did not match stop being
fed, so an upload pays for inspection only over its first few KiB (and, for a
streamOptimized VMDK, its last 512 bytes).
"""

from dataclasses import dataclass

from django.conf import settings
from oslo_utils.imageutils import format_inspector as fi

from images.enums import ContainerFormat
from images.errors import FormatMismatch, UnsafeImage

RAW = "raw"
# Glance's disk formats that no inspector recognises: their content must look like
# nothing in particular (an inspector's "raw").
NOT_INSPECTABLE = frozenset({"ami", "aki", "ari", "ploop"})
# Kernels and ramdisks start with a legacy boot sector (0x55AA at 510), which the
# GPT inspector takes for an MBR; only its MBR checks may fail for them.
BOOT_SECTOR_FORMATS = frozenset({"aki", "ari"})
MBR_CHECKS = frozenset({"mbr", "gptmbr"})
# A VMDK descriptor file names its data in other files. qemu-img pads the one it
# writes with NULs to 512 bytes, which oslo's VMDK inspector does not recognise, so
# it would pass as raw: refused here whatever format it claims (qemu opens it as a
# VMDK when asked to guess).
VMDK_DESCRIPTOR = b"# Disk DescriptorFile"


@dataclass(frozen=True)
class Verdict:
    """What the bytes are: the inspector's format name and the disk's virtual size."""

    detected: str
    virtual_size: int | None  # None when the content is not the image's disk_format


class Inspection:
    """Feed it every chunk of an upload in order; it raises as soon as the bytes are
    known to be refused, and `finish(size)` gives the verdict at the end."""

    def __init__(self, disk_format: str | None, container_format: str | None):
        self.disk_format = disk_format or ""
        # Glance inspects only bare containers; an OVA or docker tarball is not a disk.
        self.enabled = container_format == ContainerFormat.BARE
        self._candidates: dict[str, fi.FileInspector] = (
            {name: cls() for name, cls in fi.ALL_FORMATS.items() if name != RAW}
            if self.enabled
            else {}
        )
        self._chosen: fi.FileInspector | None = None
        self._decided = False
        self._checked = False
        self._head = b""

    def feed(self, chunk: bytes | memoryview) -> None:
        if self.enabled and len(self._head) < len(VMDK_DESCRIPTOR):
            self._head += chunk[: len(VMDK_DESCRIPTOR)]
            if self._head.startswith(VMDK_DESCRIPTOR):
                raise UnsafeImage(
                    "Image failed safety checks (vmdk_descriptor: a VMDK descriptor file "
                    "points at extents outside the image)",
                    checks=["vmdk_descriptor"],
                )
        if not self._candidates:
            return
        chunk = bytes(chunk)  # the inspectors keep slices; the caller's buffer is reused
        for name, inspector in list(self._candidates.items()):
            try:
                inspector.eat_chunk(chunk)
            except Exception:
                # An inspector that cannot parse the bytes is not their format.
                del self._candidates[name]
                continue
            if inspector.complete and not _matches(inspector):
                del self._candidates[name]
        if not self._decided and all(_header_read(i) for i in self._candidates.values()):
            self._decide()
        if self._chosen is not None and not self._checked and self._chosen.complete:
            self._check_safety()
            self._candidates = {}  # decided and checked: the rest of the bytes are data

    @property
    def settled(self) -> bool:
        """Whether the rest of the bytes can change nothing (a reader of stored data
        may stop here and call `finish`)."""
        if not self.enabled:
            return True
        return self._decided and not self._candidates and (self._chosen is None or self._checked)

    def finish(self, size: int) -> Verdict | None:
        """The verdict once the whole stream was fed, or once `settled` (None when
        not inspected). `size` is the whole data's: raw's virtual size."""
        if not self.enabled:
            return None
        for inspector in self._candidates.values():
            inspector.finish()
        # At the end, an inspector still waiting for its header never saw one.
        self._candidates = {
            name: i for name, i in self._candidates.items() if i.complete and _matches(i)
        }
        if not self._decided:
            self._decide()
        if not self._checked:
            self._check_safety()
        detected = str(self._chosen) if self._chosen is not None else RAW
        if self.disk_format == RAW:
            # Raw's virtual size is its byte size, even when it is something else.
            return Verdict(detected, size)
        if detected != self.disk_format:
            # Let through (ami and friends, or the match rule switched off): its own
            # format's size would not be the size of the disk it claims to be.
            return Verdict(detected, None)
        return Verdict(detected, self._chosen.virtual_size or size)

    # --- the rules ------------------------------------------------------------------

    def _decide(self) -> None:
        matched = {name: i for name, i in self._candidates.items() if _matches(i)}
        if set(matched) == {"iso", "gpt"}:
            # A bootable ISO legitimately carries a GPT in front (Glance allows it).
            matched = {"iso": matched["iso"]}
        if len(matched) > 1:
            raise UnsafeImage(
                "Image failed safety checks: multiple formats detected "
                f"({', '.join(sorted(matched))})",
                checks=["format"],
            )
        self._chosen = next(iter(matched.values()), None)
        self._decided = True
        # Only the chosen inspector still needs the bytes (a VMDK's footer, say).
        self._candidates = {str(self._chosen): self._chosen} if self._chosen else {}
        detected = str(self._chosen) if self._chosen is not None else RAW
        # With the operator's switch off, a mismatch passes (the safety checks do not).
        matches = _format_matches(self.disk_format, detected)
        if not matches and settings.IMAGES_REQUIRE_FORMAT_MATCH:
            raise FormatMismatch(
                f"Image disk_format {self.disk_format} does not match stream data {detected}"
            )

    def _check_safety(self) -> None:
        self._checked = True
        if self._chosen is None:
            return
        try:
            self._chosen.safety_check()
        except fi.SafetyCheckFailed as failed:
            fatal = set(failed.failures) - self._nonfatal(str(self._chosen))
            if fatal:
                reasons = "; ".join(f"{name}: {failed.failures[name]}" for name in sorted(fatal))
                raise UnsafeImage(
                    f"Image failed safety checks ({reasons})", checks=sorted(fatal)
                ) from None
        except Exception as error:
            # ImageFormatError, or an inspector tripping over bytes it half recognised:
            # what cannot be checked is not accepted (Glance: "inspection failed").
            raise UnsafeImage(f"Image failed safety checks: {error}", checks=["format"]) from None

    def _nonfatal(self, detected: str) -> set[str]:
        if detected != "gpt":
            return set()
        allowed = set(settings.IMAGES_GPT_SAFETY_CHECKS_NONFATAL)
        if self.disk_format in BOOT_SECTOR_FORMATS:
            allowed |= MBR_CHECKS
        return allowed


def _format_matches(disk_format: str, detected: str) -> bool:
    if detected == disk_format or disk_format == RAW:
        return True
    if disk_format in NOT_INSPECTABLE:
        # A kernel's boot sector reads as an MBR ("gpt"): aki/ari may carry one.
        return detected == RAW or (detected == "gpt" and disk_format in BOOT_SECTOR_FORMATS)
    return False


def _matches(inspector: fi.FileInspector) -> bool:
    """The inspector's format_match; one that trips over the bytes does not match."""
    try:
        return bool(inspector.format_match)
    except Exception:
        return False


def _header_read(inspector: fi.FileInspector) -> bool:
    """Whether the inspector has all it needs but the end of the stream."""
    return all(
        inspector.region(name).complete or isinstance(inspector.region(name), fi.EndCaptureRegion)
        for name in inspector.context_info
    )
