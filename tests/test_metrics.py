"""``/metrics``, ``/healthz`` and ``/readyz`` on the real server."""

from __future__ import annotations

from tests.helpers import Client, push_blob, push_image


async def test_healthz_and_readyz(registry: Client) -> None:
    r = await registry.get("/healthz")
    assert r.status == 200
    assert (await r.json())["status"] == "ok"
    r = await registry.get("/readyz")
    assert r.status == 200
    assert await r.json() == {"status": "ok", "problems": []}


async def test_metrics_count_requests_bytes_and_uploads(registry: Client) -> None:
    await push_image(registry, "metrics/demo", "v1")
    data = b"x" * 1000
    digest = await push_blob(registry, "metrics/demo", data)
    for _ in range(3):  # the same series again and again
        r = await registry.get(f"/v2/metrics/demo/blobs/{digest}")
        assert await r.read() == data
    r = await registry.head(f"/v2/metrics/demo/blobs/{digest}")
    assert r.status == 200
    r = await registry.post("/v2/metrics/demo/blobs/uploads/")
    assert r.status == 202

    r = await registry.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = await r.text()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['dockyard_http_requests_total{group="manifests",method="PUT",status="201"}'] == 1
    assert samples['dockyard_http_requests_total{group="blobs",method="GET",status="200"}'] == 3
    assert samples['dockyard_http_requests_total{group="blobs",method="HEAD",status="200"}'] == 1
    assert samples['dockyard_http_response_body_bytes_total{group="blobs"}'] == 3000
    latency = 'dockyard_http_request_duration_seconds_count{group="blobs",method="GET"}'
    assert samples[latency] == 3
    assert samples['dockyard_http_request_body_bytes_total{group="uploads"}'] >= 1000
    assert samples["dockyard_upload_sessions"] == 1
    assert samples['dockyard_blob_store_operation_seconds_count{operation="commit_upload"}'] >= 3
    assert "process_resident_memory_bytes" in samples
