"""The stores side by side (issue 14): the same curl upload and download of the largest
file through the registry on the filesystem store, on Ceph RBD and on the RADOS
Gateway (S3), each beside what that store does without the registry in front (the
`rbd`/`rados` Python bindings writing and reading the same file in 8 MiB operations,
boto3 putting and getting it with the registry's transfer settings).

The Ceph is tests/ceph.py's throwaway single-node cluster on loopback, its OSD in RAM
and on the same two cores as the server, so these figures compare the registry with
the store it sits on, not with a production Ceph."""

import time
import uuid
from pathlib import Path

from benchmarks.common import MiB, registry_target
from benchmarks.download import curl_download
from benchmarks.report import Results, log
from benchmarks.upload import ONE_PASS, curl_upload
from tests.ceph import Ceph, missing, running_ceph
from tests.live import running_registry

OP = 8 * MiB  # Glance's rbd chunk size, and the registry's S3 part size
# Deleting is immediate here, so one image's bytes at a time live in the OSD's RAM.
STORE_ENV = {"IMAGES_DELAYED_DELETE": "0"}


def measure_stores(res: Results, files: dict[str, Path], repeat: int, tmp: Path) -> None:
    if problem := missing():
        res.skip(f"stores on Ceph: {problem}")
        return
    label = max(files, key=lambda k: files[k].stat().st_size)
    path = files[label]
    with running_ceph() as ceph:
        bucket = _bucket(ceph)
        _rbd_limits(res, ceph, path, label, repeat)
        _s3_limits(res, ceph, bucket, path, label, repeat)
        stores = {
            "file": {},
            "RBD": ceph.env,
            "radosgw": ceph.s3_env(bucket),
        }
        for store, env in stores.items():
            folder = tmp / f"store-{store}"
            folder.mkdir()
            with running_registry(folder, env={**env, **STORE_ENV}) as registry:
                _through_registry(res, registry, store, path, label, repeat)


def _through_registry(res, registry, store: str, path: Path, label: str, repeat: int) -> None:
    target = registry_target(registry)
    api = target.api()
    mib = path.stat().st_size / MiB
    up, down = [], []
    for i in range(repeat):
        image_id = api.create_image(f"{store}-{i}")
        up.append(mib / curl_upload(target, image_id, path))
        seconds, _ = curl_download(
            f"{target.url}/v2/images/{image_id}/file", target.curl_headers, "200"
        )
        down.append(mib / seconds)
        api.request("DELETE", f"/v2/images/{image_id}")
    # Each beside its store's own rate; the file store's beside hashing and `cat`.
    if store == "file":
        limits = ("limits", ONE_PASS.format(label)), ("limits", f"cat > /dev/null {label}")
    else:
        own = "rbd" if store == "RBD" else "radosgw"
        limits = (
            ("stores", f"{own} write {label}, no HTTP"),
            ("stores", f"{own} read {label}, no HTTP"),
        )
    res.add("stores", f"upload curl {label}, {store} store", "MiB/s", up, limit=limits[0])
    res.add("stores", f"download curl {label}, {store} store", "MiB/s", down, limit=limits[1])
    log(f"stores: {store} upload {max(up):.0f}, download {max(down):.0f} MiB/s (best)")


def _rbd_limits(res: Results, ceph: Ceph, path: Path, label: str, repeat: int) -> None:
    import rados
    import rbd

    size = path.stat().st_size
    writes, reads = [], []
    # Rados connects on entry.
    with rados.Rados(conffile=str(ceph.conf)) as cluster, cluster.open_ioctx(ceph.pool) as ioctx:
        for i in range(repeat):
            name = f"bench-{i}"
            rbd.RBD().create(ioctx, name, size, order=23, old_format=False, features=1)
            with rbd.Image(ioctx, name) as image, open(path, "rb") as source:
                started = time.perf_counter()
                offset = 0
                while chunk := source.read(OP):
                    image.write(chunk, offset)
                    offset += len(chunk)
                writes.append(size / MiB / (time.perf_counter() - started))
                started = time.perf_counter()
                for offset in range(0, size, OP):
                    image.read(offset, OP)
                reads.append(size / MiB / (time.perf_counter() - started))
            rbd.RBD().remove(ioctx, name)
    res.add("stores", f"rbd write {label}, no HTTP", "MiB/s", writes, "machine")
    res.add("stores", f"rbd read {label}, no HTTP", "MiB/s", reads, "machine")


def _s3(ceph: Ceph):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=ceph.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=ceph.s3_access_key,
        aws_secret_access_key=ceph.s3_secret_key,
    )


def _bucket(ceph: Ceph) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    _s3(ceph).create_bucket(Bucket=name)
    return name


def _s3_limits(res: Results, ceph: Ceph, bucket: str, path: Path, label: str, repeat) -> None:
    from boto3.s3.transfer import TransferConfig

    # The registry's settings (glance_site/settings.py): 8 MiB parts, 4 at a time.
    config = TransferConfig(max_concurrency=4, multipart_chunksize=OP)
    client = _s3(ceph)
    mib = path.stat().st_size / MiB
    writes, reads = [], []
    for i in range(repeat):
        started = time.perf_counter()
        client.upload_file(str(path), bucket, f"bench-{i}", Config=config)
        writes.append(mib / (time.perf_counter() - started))
        started = time.perf_counter()
        body = client.get_object(Bucket=bucket, Key=f"bench-{i}")["Body"]
        while body.read(OP):
            pass
        reads.append(mib / (time.perf_counter() - started))
        client.delete_object(Bucket=bucket, Key=f"bench-{i}")
    res.add("stores", f"radosgw write {label}, no HTTP", "MiB/s", writes, "machine")
    res.add("stores", f"radosgw read {label}, no HTTP", "MiB/s", reads, "machine")
