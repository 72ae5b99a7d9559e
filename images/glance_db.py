"""Reading a Glance database (import_glance): its images, with their properties, tags,
members and locations, as plain dataclasses.

SQLAlchemy Core on the tables of Glance's glance/db/sqlalchemy/models.py, so any URL
Glance itself is configured with works (MySQL/MariaDB through PyMySQL, PostgreSQL
through psycopg 3, SQLite). The database is only read: SQLite is opened with
`mode=ro`, PostgreSQL and MySQL in read-only transactions.

Which rows count, as Glance's own db api decides (glance/db/sqlalchemy/api.py):
a child row (property, tag, member, location) with `deleted` set is gone, except
those of a `pending_delete` image: `image_destroy` soft-deletes the image's children
at the image's own `deleted_at`, and a restore must bring them back, so they count.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

# Children are read for this many images at a time (one IN query per table).
BATCH = 500

_meta = sa.MetaData()


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
        sa.Column("deleted_at", sa.DateTime),
        sa.Column("deleted", sa.Boolean),
    ]


IMAGES = sa.Table(
    "images",
    _meta,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255)),
    sa.Column("disk_format", sa.String(20)),
    sa.Column("container_format", sa.String(20)),
    sa.Column("size", sa.BigInteger),
    sa.Column("virtual_size", sa.BigInteger),
    sa.Column("status", sa.String(30)),
    sa.Column("visibility", sa.String(20)),
    sa.Column("checksum", sa.String(32)),
    sa.Column("os_hash_algo", sa.String(64)),
    sa.Column("os_hash_value", sa.String(128)),
    sa.Column("min_disk", sa.Integer),
    sa.Column("min_ram", sa.Integer),
    sa.Column("owner", sa.String(255)),
    sa.Column("protected", sa.Boolean),
    sa.Column("os_hidden", sa.Boolean),
    *_timestamps(),
)
PROPERTIES = sa.Table(
    "image_properties",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("image_id", sa.String(36)),
    sa.Column("name", sa.String(255)),
    sa.Column("value", sa.Text),
    *_timestamps(),
)
TAGS = sa.Table(
    "image_tags",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("image_id", sa.String(36)),
    sa.Column("value", sa.String(255)),
    *_timestamps(),
)
MEMBERS = sa.Table(
    "image_members",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("image_id", sa.String(36)),
    sa.Column("member", sa.String(255)),
    sa.Column("status", sa.String(20)),
    *_timestamps(),
)
LOCATIONS = sa.Table(
    "image_locations",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("image_id", sa.String(36)),
    sa.Column("value", sa.Text),
    sa.Column("meta_data", sa.Text),
    sa.Column("status", sa.String(30)),
    *_timestamps(),
)
TABLES = (IMAGES, PROPERTIES, TAGS, MEMBERS, LOCATIONS)


class GlanceSourceError(Exception):
    """The Glance database cannot be read: unreachable, or not Glance's schema."""


@dataclass(frozen=True)
class GlanceMember:
    member: str
    state: str  # pending, accepted, rejected
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class GlanceLocation:
    url: str
    metadata: dict
    state: str  # active, pending_delete, deleted


@dataclass
class GlanceImage:
    id: str
    name: str | None
    state: str  # Glance's status, as its row has it
    deleted: bool
    visibility: str
    protected: bool
    os_hidden: bool
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    size: int | None
    virtual_size: int | None
    disk_format: str | None
    container_format: str | None
    min_disk: int
    min_ram: int
    owner: str | None
    created_at: datetime
    updated_at: datetime | None
    deleted_at: datetime | None
    properties: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    members: list[GlanceMember] = field(default_factory=list)
    locations: list[GlanceLocation] = field(default_factory=list)


def _aware(value: datetime | None) -> datetime | None:
    """Glance writes naive UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def engine_url(url: str) -> URL:
    """The URL as SQLAlchemy opens it read-only: Glance's usual spellings kept working
    (a bare postgresql:// or mysql:// names a driver we do not ship)."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise GlanceSourceError(f"Not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in ("mysql", "mysql+mysqldb", "mariadb"):
        parsed = parsed.set(drivername="mysql+pymysql")
    elif backend == "sqlite":
        if not parsed.database:
            raise GlanceSourceError("A SQLite Glance database must be a file, not in memory.")
        parsed = parsed.set(
            database=f"file:{parsed.database}", query={**parsed.query, "mode": "ro", "uri": "true"}
        )
    return parsed


def shown(url: str) -> str:
    """The URL with its password hidden, for reports and history rows."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(not a URL)"


class GlanceDatabase:
    """One Glance database, read-only. Raises GlanceSourceError when it cannot be read
    or does not have Glance's image tables."""

    def __init__(self, url: str):
        self.url = url
        target = engine_url(url)
        options = {"postgresql_readonly": True} if target.get_backend_name() == "postgresql" else {}
        try:
            self.engine = sa.create_engine(target, execution_options=options)
            self.backend = target.get_backend_name()
            if self.backend == "mysql":
                sa.event.listen(self.engine, "connect", _mysql_read_only)
            self._check_schema()
        except GlanceSourceError:
            raise
        except Exception as exc:  # the driver's own account: unreachable, refused, ...
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            raise GlanceSourceError(
                f"Cannot read the Glance database {shown(url)}: {first}"
            ) from None

    def _check_schema(self) -> None:
        inspector = sa.inspect(self.engine)
        present = set(inspector.get_table_names())
        for table in TABLES:
            if table.name not in present:
                raise GlanceSourceError(
                    f"{shown(self.url)} is not a Glance database: it has no {table.name} table."
                )
            columns = {column["name"] for column in inspector.get_columns(table.name)}
            missing = [c.name for c in table.columns if c.name not in columns]
            if missing:
                raise GlanceSourceError(
                    f"{shown(self.url)} is not a Glance database this import reads: "
                    f"{table.name} has no {', '.join(missing)}."
                )

    def close(self) -> None:
        self.engine.dispose()

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(IMAGES)).scalar_one()

    def images(self, batch: int = BATCH) -> Iterator[GlanceImage]:
        """Every image row, oldest first, with its children; read in batches by id."""
        after = None
        while True:
            query = sa.select(IMAGES).order_by(IMAGES.c.id).limit(batch)
            if after is not None:
                query = query.where(IMAGES.c.id > after)
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
                if not rows:
                    return
                images = {row["id"]: _image(row) for row in rows}
                self._children(conn, images)
            yield from images.values()
            after = rows[-1]["id"]

    def _children(self, conn: sa.Connection, images: dict[str, GlanceImage]) -> None:
        ids = list(images)

        def rows(table: sa.Table):
            query = sa.select(table).where(table.c.image_id.in_(ids)).order_by(table.c.id)
            for row in conn.execute(query).mappings():
                image = images[row["image_id"]]
                if _counts(row, image, table):
                    yield image, row

        for image, row in rows(PROPERTIES):
            image.properties[row["name"]] = row["value"] if row["value"] is not None else ""
        for image, row in rows(TAGS):
            if row["value"] not in image.tags:
                image.tags.append(row["value"])
        for image, row in rows(MEMBERS):
            image.members.append(
                GlanceMember(
                    member=row["member"],
                    state=row["status"],
                    created_at=_aware(row["created_at"]),
                    updated_at=_aware(row["updated_at"] or row["created_at"]),
                )
            )
        for image, row in rows(LOCATIONS):
            metadata = json.loads(row["meta_data"]) if row["meta_data"] else {}
            image.locations.append(
                GlanceLocation(url=row["value"], metadata=metadata, state=row["status"])
            )


def _counts(row, image: GlanceImage, table: sa.Table) -> bool:
    """Whether a child row belongs to the image as Glance would show (or restore) it.
    A pending_delete image's locations are marked `pending_delete` (just before the
    image, at their own time); its other children are deleted at the image's time."""
    if table is LOCATIONS:
        if image.state == "pending_delete":
            return row["status"] == "pending_delete"
        return not row["deleted"] and row["status"] != "deleted"
    if not row["deleted"]:
        return True
    return image.state == "pending_delete" and _aware(row["deleted_at"]) == image.deleted_at


def _image(row) -> GlanceImage:
    return GlanceImage(
        id=row["id"],
        name=row["name"],
        state=row["status"],
        deleted=bool(row["deleted"]),
        visibility=row["visibility"] or "shared",
        protected=bool(row["protected"]),
        os_hidden=bool(row["os_hidden"]),
        checksum=row["checksum"],
        os_hash_algo=row["os_hash_algo"],
        os_hash_value=row["os_hash_value"],
        size=row["size"],
        virtual_size=row["virtual_size"],
        disk_format=row["disk_format"],
        container_format=row["container_format"],
        min_disk=row["min_disk"] or 0,
        min_ram=row["min_ram"] or 0,
        owner=row["owner"],
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
        deleted_at=_aware(row["deleted_at"]),
    )


def _mysql_read_only(dbapi_connection, _record) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION READ ONLY")
