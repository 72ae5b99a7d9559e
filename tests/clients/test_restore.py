"""Delete → pending_delete → restore → the same bytes, over HTTP on the real server."""

import hashlib

import requests


def test_restore_brings_back_deleted_image_with_identical_bytes(registry, payload_file):
    path, data = payload_file()
    alice = {"X-Auth-Token": registry.tokens["alice"]}
    rita = {"X-Auth-Token": registry.tokens["rita"], "Accept": "application/json"}
    created = requests.post(
        f"{registry.url}/v2/images",
        json={"name": "precious", "disk_format": "raw", "container_format": "bare"},
        headers=alice,
    ).json()
    image_url = f"{registry.url}/v2/images/{created['id']}"
    with open(path, "rb") as f:
        uploaded = requests.put(
            f"{image_url}/file",
            data=f,
            headers={**alice, "Content-Type": "application/octet-stream"},
        )
    assert uploaded.status_code == 204

    assert requests.delete(image_url, headers=alice).status_code == 204
    assert requests.get(image_url, headers=alice).status_code == 404
    assert (registry.store / created["id"]).read_bytes() == data  # kept until the scrub

    listed = requests.get(
        f"{registry.url}/v2/images", params={"status": "pending_delete"}, headers=rita
    ).json()["images"]
    [pending] = [image for image in listed if image["id"] == created["id"]]
    assert pending["status"] == "pending_delete"
    assert pending["os_glance_scrub_at"] > pending["deleted_at"]

    restored = requests.post(f"{image_url}/actions/restore", headers=rita)
    assert restored.status_code == 204

    shown = requests.get(image_url, headers=alice).json()
    assert shown["status"] == "active"
    download = requests.get(f"{image_url}/file", headers=alice)
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["Content-MD5"] == hashlib.md5(data).hexdigest()


def test_restore_refused_to_the_owner_without_the_permission(registry):
    alice = {"X-Auth-Token": registry.tokens["alice"], "Accept": "application/json"}
    created = requests.post(
        f"{registry.url}/v2/images", json={"name": "gone"}, headers=alice
    ).json()
    image_url = f"{registry.url}/v2/images/{created['id']}"
    assert requests.delete(image_url, headers=alice).status_code == 204
    refused = requests.post(f"{image_url}/actions/restore", headers=alice)
    assert refused.status_code == 404
    assert refused.json()["message"] == f"No image found with ID {created['id']}"


def test_range_download_through_sendfile(registry, payload_file):
    _path, data = payload_file(2 * 1024 * 1024)
    alice = {"X-Auth-Token": registry.tokens["alice"]}
    created = requests.post(
        f"{registry.url}/v2/images",
        json={"name": "ranged", "disk_format": "raw", "container_format": "bare"},
        headers=alice,
    ).json()
    image_url = f"{registry.url}/v2/images/{created['id']}"
    requests.put(
        f"{image_url}/file",
        data=data,
        headers={**alice, "Content-Type": "application/octet-stream"},
    )
    middle = requests.get(f"{image_url}/file", headers={**alice, "Range": "bytes=1000-1999"})
    assert middle.status_code == 206
    assert middle.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert middle.content == data[1000:2000]
    tail = requests.get(f"{image_url}/file", headers={**alice, "Range": "bytes=-10"})
    assert tail.content == data[-10:]
