"""The lifecycle commands as an operator runs them, next to a running server."""

from __future__ import annotations

from pathlib import Path

from tests.gc.cli import dockyard, write_config
from tests.gc.conftest import blob_file
from tests.helpers import Client, blob_status, push_blob, push_image, sha256, tags_of


async def test_gc_dry_run_then_gc(registry: Client, data_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "dockyard.toml", data_dir)
    await push_image(registry, "cli/app", "v1", layers=[b"kept layer"])
    orphan = await push_blob(registry, "cli/app", b"orphan bytes")
    dry = await dockyard("gc", "--dry-run", "--json", "-c", config)
    assert dry.code == 0, dry.stderr
    assert dry.json()["deleted_blobs"] == [{"digest": orphan, "size": 12}]
    assert blob_file(data_dir, orphan).exists()
    done = await dockyard("gc", "--json", "-c", config)
    assert done.code == 0, done.stderr
    assert done.json()["deleted_blobs"] == [{"digest": orphan, "size": 12}]
    assert done.json()["bytes_freed"] == 12
    assert not blob_file(data_dir, orphan).exists()
    assert await blob_status(registry, "cli/app", orphan) == 404
    assert await blob_status(registry, "cli/app", sha256(b"kept layer")) == 200
    text = await dockyard("gc", "-c", config)
    assert text.code == 0
    assert "deleted 0 blob(s)" in text.stdout
    assert "1 reachable" in text.stdout


async def test_retention_apply(registry: Client, data_dir: Path, tmp_path: Path) -> None:
    rules = (
        '[[retention]]\nname = "prs"\nrepositories = "cli/**"\nkeep_tags = ["v*"]\n'
        'delete_tags = { pattern = "pr-*", older_than = "0s" }\n'
    )
    config = write_config(tmp_path / "dockyard.toml", data_dir, rules)
    for tag in ("pr-1", "v1"):
        await push_image(registry, "cli/ret", tag, layers=[tag.encode()])
    dry = await dockyard("retention", "apply", "--dry-run", "-c", config)
    assert dry.code == 0, dry.stderr
    assert "cli/ret:pr-1" in dry.stdout
    assert "would delete 1 tag(s)" in dry.stdout
    assert await tags_of(registry, "cli/ret") == ["pr-1", "v1"]
    done = await dockyard("retention", "apply", "-c", config)
    assert done.code == 0, done.stderr
    assert await tags_of(registry, "cli/ret") == ["v1"]
    r = await registry.get("/v2/cli/ret/tags/list")
    assert (await r.json())["tags"] == ["v1"]


async def test_fsck_exit_status_and_json(registry: Client, data_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "dockyard.toml", data_dir)
    digest, _ = await push_image(registry, "cli/fsck", "v1", layers=[b"to be damaged"])
    ok = await dockyard("fsck", "-c", config)
    assert ok.code == 0, ok.stderr
    assert "no problems" in ok.stdout
    blob_file(data_dir, sha256(b"to be damaged")).write_bytes(b"damaged bytes")
    bad = await dockyard("fsck", "--all", "--json", "-c", config)
    assert bad.code == 1
    [problem] = bad.json()["problems"]
    assert problem["kind"] == "corrupt"
    assert problem["breaks"] == [{"repository": "cli/fsck", "manifest": digest, "tags": ["v1"]}]
    text = await dockyard("fsck", "--sample", "5", "-c", config)
    assert text.code == 1
    assert f"breaks cli/fsck@{digest} (v1)" in text.stdout
    recent = await dockyard("fsck", "--older-than", "30d", "-c", config)
    assert recent.code == 0  # everything was verified moments ago
    assert "checked 0 blob(s)" in recent.stdout
    both = await dockyard("fsck", "--all", "--sample", "1", "-c", config)
    assert both.code == 2


async def test_usage(registry: Client, data_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "dockyard.toml", data_dir)
    await push_blob(registry, "quota/a", b"u" * 1024)
    await push_blob(registry, "quota/b", b"u" * 1024)
    done = await dockyard("usage", "--json", "-c", config)
    assert done.code == 0, done.stderr
    assert done.json()["namespaces"] == [
        {"namespace": "quota", "size": 1024, "blobs": 1, "limit": 4096}
    ]
    table = await dockyard("usage", "-c", config)
    assert "quota" in table.stdout
    assert "25%" in table.stdout
