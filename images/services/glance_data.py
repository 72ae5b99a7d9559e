"""import_glance's bytes: each image's Glance locations copied into our store
(`copy`: streamed, hashed and checked against Glance's checksum and os_hash_value),
adopted where they lie inside it (`adopt`), or left out.

Glance's locations are `file://<path>` (its filesystem store) and `rbd://` (its rbd
store: `rbd://<fsid>/<pool>/<image>/<snapshot>`, url-quoted, or the legacy
`rbd://<image>` in Glance's `rbd_store_pool`). A snapshot is read read-only with our
Ceph settings (IMAGES_RBD_CEPH_CONF, _USER, _KEYRING), whatever our store is.

A copy is written under the image's id. On RBD that name can already be taken by
the leftover of an interrupted copy (a killed run: RBD writes in place, no
`.partial`): with no record of the image here and no location of ours naming it,
it is replaced. An image with a location in our own RBD pool is never copied (it
would be copied onto itself, and its leftover is Glance's data): `--adopt-data`.
"""

import enum
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings

from images import storage
from images.enums import Status
from images.errors import ImageError, InvalidInput, StoreError
from images.glance_db import GlanceImage, GlanceLocation
from images.ingest import HASH_ALGO
from images.models import ImageLocation
from images.rbd_store import SNAPSHOT, RBDStorage, StoreInUse

# Statuses whose images have bytes (a location) in Glance.
WITH_DATA = (Status.ACTIVE, Status.DEACTIVATED, Status.PENDING_DELETE)
GLANCE_RBD_POOL = "images"  # Glance's rbd_store_pool default: where rbd://<image> is


class DataMode(enum.StrEnum):
    NONE = "none"  # metadata only
    COPY = "copy"  # stream each image's bytes into our store
    ADOPT = "adopt"  # record bytes that already lie inside our store


class Skip(Exception):
    """This image is not brought over; the message says why."""


@dataclass(frozen=True)
class Data:
    """What one image's bytes came to: in-store object, external URLs, bytes."""

    store_name: str | None = None
    external: tuple[GlanceLocation, ...] = ()
    size: int = 0
    copied: bool = False  # the object is ours to remove if the record fails


@dataclass(frozen=True)
class RBDLocation:
    fsid: str | None  # None in the legacy form
    pool: str
    image: str
    snapshot: str | None  # None: the image itself (the legacy form)

    def __str__(self) -> str:
        return f"{self.pool}/{self.image}" + (f"@{self.snapshot}" if self.snapshot else "")


def parse_rbd(url: str, *, default_pool: str = GLANCE_RBD_POOL) -> RBDLocation:
    """An rbd:// location as glance_store's rbd driver parses it (StoreLocation)."""
    pieces = url[len("rbd://") :].split("/")
    if len(pieces) not in (1, 4) or "" in pieces:
        raise Skip(f"{url} is not an rbd:// location Glance writes (1 or 4 parts)")
    if len(pieces) == 1:  # glance_store does not unquote this form
        return RBDLocation(fsid=None, pool=default_pool, image=pieces[0], snapshot=None)
    fsid, pool, image, snapshot = map(unquote, pieces)
    return RBDLocation(fsid=fsid, pool=pool, image=image, snapshot=snapshot)


class GlanceData:
    """Brings images' bytes over in one `mode`; holds a Ceph connection to each of
    Glance's pools it reads, for the run (`close()` ends them)."""

    def __init__(self, mode: DataMode, *, rbd_pool: str = GLANCE_RBD_POOL):
        self.mode = mode
        self.rbd_pool = rbd_pool
        self._pools: dict[str, RBDStorage] = {}

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def bring(
        self, image: GlanceImage, target: str, *, dry_run: bool, notes: list[tuple[str, str]]
    ) -> Data:
        """Copy, adopt or leave the image's bytes (what was done goes to `notes`);
        raises Skip when the image would otherwise say it has data it has not."""
        if target not in WITH_DATA:
            return Data()
        wanted = "pending_delete" if target == Status.PENDING_DELETE else "active"
        locations = [loc for loc in image.locations if loc.state == wanted]
        external = tuple(loc for loc in locations if _scheme(loc.url) in ("http", "https"))
        inside = [loc for loc in locations if _scheme(loc.url) not in ("http", "https")]
        for location in external:
            notes.append((image.id, f"kept external location {location.url}"))
        if not inside:
            if not external and image.size:
                raise Skip(f"{target} with {image.size} bytes but no location in Glance")
            return Data(external=external)
        if self.mode == DataMode.NONE:
            if external:
                notes.append((image.id, f"left out {len(inside)} store location(s)"))
                return Data(external=external)
            raise Skip(f"{target} with data in Glance's store: use --copy-data or --adopt-data")
        if self.mode == DataMode.COPY:
            # Every location Glance still has, not only the ones copied from: one in our
            # pool is Glance's data under the very name a copy would write.
            self._refuse_our_pool(image.locations)
        reasons = []
        for location in inside:
            try:
                if self.mode == DataMode.ADOPT:
                    found = self._adopt(image, location)
                else:
                    found = self._copy(image, location, dry_run=dry_run, notes=notes)
            except Skip as exc:
                reasons.append(str(exc))
                continue
            others = len(inside) - 1
            if others:
                notes.append((image.id, f"{others} more copies in Glance not brought over"))
            return Data(
                store_name=found.store_name,
                external=external,
                size=found.size,
                copied=found.copied,
            )
        if external:
            notes.append((image.id, "; ".join(reasons)))
            return Data(external=external)
        raise Skip("; ".join(reasons))

    def discard(self, data: Data) -> None:
        """Remove bytes copied for a record that was not made, unless a location of
        ours names them (another run recorded the same image meanwhile)."""
        if (
            data.copied
            and not ImageLocation.objects.filter(url=data.store_name, in_store=True).exists()
        ):
            storage.delete(data.store_name)

    # --- copy -------------------------------------------------------------------------

    def _refuse_our_pool(self, locations: list[GlanceLocation]) -> None:
        for location in locations:
            if _scheme(location.url) == "rbd" and self._in_our_pool(location.url):
                raise Skip(
                    f"{location.url} is in our own RBD pool ({storage.store().pool}): "
                    "it cannot be copied onto itself; use --adopt-data"
                )

    def _in_our_pool(self, url: str) -> bool:
        backend = storage.store()
        if not isinstance(backend, RBDStorage):
            return False
        where = parse_rbd(url, default_pool=self.rbd_pool)
        if where.pool != backend.pool:
            return False
        try:
            return where.fsid is None or where.fsid == backend.fsid()
        except StoreError as exc:
            raise Skip(exc.message) from None

    def _copy(
        self,
        image: GlanceImage,
        location: GlanceLocation,
        *,
        dry_run: bool,
        notes: list[tuple[str, str]],
    ) -> Data:
        if _scheme(location.url) == "rbd":
            where = parse_rbd(location.url, default_pool=self.rbd_pool)
            source = f"RBD image {where}"
            stream = self._open_rbd(where)
            actual = stream.image.size()
        else:
            path = _file_path(location)
            source = f"data file {path}"
            if not path.is_file():
                raise Skip(f"{source} is missing")
            stream = open(path, "rb")  # noqa: SIM115 (closed below)
            actual = path.stat().st_size
        with stream:
            if image.size is not None and actual != image.size:
                raise Skip(f"{source} has {actual} bytes, Glance records {image.size}")
            if dry_run:
                return Data(store_name=storage.object_name(image.id), size=actual)
            self._clear_leftover(image.id, notes)
            try:
                stored = storage.put(
                    image.id,
                    stream,
                    declared_size=image.size,
                    limit=max(actual, image.size or 0),
                    on_limit=lambda size: InvalidInput(f"{source} grew to {size} bytes while read"),
                )
            except (ImageError, OSError) as exc:
                raise Skip(f"copying {source} failed: {getattr(exc, 'message', exc)}") from None
        problem = _mismatch(image, stored)
        if problem:
            storage.delete(stored.name)
            raise Skip(problem)
        return Data(store_name=stored.name, size=stored.size, copied=True)

    def _open_rbd(self, where: RBDLocation):
        if where.pool not in self._pools:
            self._pools[where.pool] = RBDStorage(where.pool, **settings.IMAGES_RBD_CLIENT)
        pool = self._pools[where.pool]
        try:
            if where.fsid is not None and where.fsid != pool.fsid():
                raise Skip(
                    f"RBD image {where} is on Ceph cluster {where.fsid}; "
                    f"IMAGES_RBD_CEPH_CONF reaches cluster {pool.fsid()}"
                )
            return pool.open_range(where.image, snapshot=where.snapshot)
        except FileNotFoundError:
            raise Skip(f"RBD image {where} is missing") from None
        except (StoreError, OSError) as exc:
            raise Skip(f"RBD image {where}: {getattr(exc, 'message', exc)}") from None

    def _clear_leftover(self, image_id: str, notes: list[tuple[str, str]]) -> None:
        """An RBD image by this id with no record here is what an interrupted copy
        left (RBD writes under the final name): it is removed so that the copy can
        run again. Not when a location of ours names it, nor while it is open
        elsewhere (a copy under way keeps a watch on it)."""
        backend = storage.store()
        name = storage.object_name(image_id)
        if not isinstance(backend, RBDStorage) or not backend.exists(name):
            return
        if ImageLocation.objects.filter(url=name, in_store=True).exists():
            raise Skip(f"RBD image {name} in our pool belongs to another image's location")
        try:
            storage.delete(name)
        except StoreInUse:
            raise Skip(
                f"RBD image {name} left in our pool is in use (clones, or a copy still "
                "running or killed under a minute ago): run again later"
            ) from None
        notes.append((image_id, f"replaced RBD image {name} left by an interrupted copy"))

    # --- adopt ------------------------------------------------------------------------

    def _adopt(self, image: GlanceImage, location: GlanceLocation) -> Data:
        """Bytes inside our store become an ordinary in-store location: no copy."""
        if _scheme(location.url) == "rbd":
            return self._adopt_rbd(location)
        path = _file_path(location)
        root = storage.local_path("")
        if root is None or path.parent.resolve() != Path(root).resolve():
            raise Skip(f"{path} is not inside IMAGES_STORE ({root}); use --copy-data")
        if not path.is_file():
            raise Skip(f"data file {path} is missing")
        actual = path.stat().st_size
        if image.size is not None and actual != image.size:
            raise Skip(f"data file {path} has {actual} bytes, Glance records {image.size}")
        return Data(store_name=path.name, size=actual)

    def _adopt_rbd(self, location: GlanceLocation) -> Data:
        backend = storage.store()
        if not self._in_our_pool(location.url):
            raise Skip(f"{location.url} is not in our RBD pool; use --copy-data")
        where = parse_rbd(location.url, default_pool=self.rbd_pool)
        if where.snapshot != SNAPSHOT:  # ours reads, and Nova clones, `snap`
            raise Skip(f"{location.url} is not snapshot {SNAPSHOT!r}; use --copy-data")
        try:
            return Data(store_name=where.image, size=backend.size(where.image))
        except FileNotFoundError:
            raise Skip(f"RBD image {where} is missing from our pool") from None
        except (StoreError, OSError) as exc:
            raise Skip(f"RBD image {where}: {getattr(exc, 'message', exc)}") from None


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def _file_path(location: GlanceLocation) -> Path:
    parts = urlsplit(location.url)
    if parts.scheme != "file":
        raise Skip(f"{parts.scheme}:// locations cannot be copied ({location.url})")
    return Path(unquote(parts.path))


def _mismatch(image: GlanceImage, stored: storage.StoredData) -> str | None:
    if image.checksum and image.checksum != stored.checksum:
        return f"checksum mismatch: Glance records {image.checksum}, the data is {stored.checksum}"
    same_algo = (image.os_hash_algo or HASH_ALGO) == HASH_ALGO
    if image.os_hash_value and same_algo and image.os_hash_value != stored.os_hash_value:
        return "os_hash_value mismatch: the data's sha512 is not the one Glance records"
    return None
