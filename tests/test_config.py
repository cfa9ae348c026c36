"""Configuration: defaults, the TOML file, DOCKYARD_* variables, flags, and errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from dockyard.config import ConfigError, Settings, load_settings, parse_duration


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DOCKYARD_* variable from the outside; relative paths resolve under tmp_path."""
    for name in list(os.environ):
        if name.startswith("DOCKYARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dockyard.toml"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 5000
    assert settings.server.workers == 1
    assert settings.server.data_dir == tmp_path / "data"
    assert settings.server.data_dir.is_absolute()
    assert settings.server.public_url == ""
    assert settings.server.log_format == "text"
    assert settings.server.max_manifest_size == 4 * 1024 * 1024
    assert settings.metadata.url == ""
    assert settings.metadata.pool_size == 10
    assert settings.storage.kind == "filesystem"
    assert settings.storage.path == ""
    assert settings.storage.fsync is True
    # Derived locations follow data_dir.
    assert settings.metadata_url == f"sqlite:///{tmp_path / 'data' / 'metadata.db'}"
    assert settings.blob_path == tmp_path / "data" / "blobs"


def test_defaults_need_no_file(tmp_path: Path) -> None:
    assert load_settings() == Settings()
    assert not (tmp_path / "data").exists()  # loading never creates anything


def test_toml_file(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
[server]
host = "0.0.0.0"
port = 5001
data_dir = "/srv/dockyard"
log_format = "json"
max_manifest_size = "8MiB"

[metadata]
url = "postgresql://dockyard@db/dockyard"
pool_size = 20

[storage]
path = "/mnt/blobs"
fsync = false
""",
    )
    settings = load_settings(path)
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 5001
    assert settings.server.data_dir == Path("/srv/dockyard")
    assert settings.server.log_format == "json"
    assert settings.server.max_manifest_size == 8 * 1024 * 1024
    assert settings.metadata_url == "postgresql://dockyard@db/dockyard"
    assert settings.metadata.pool_size == 20
    assert settings.blob_path == Path("/mnt/blobs")
    assert settings.storage.fsync is False


def test_relative_data_dir_in_the_file_is_made_absolute(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[server]\ndata_dir = "var/dockyard"\n')
    assert load_settings(path).server.data_dir == tmp_path / "var" / "dockyard"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, '[server]\nport = 5001\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("DOCKYARD_SERVER__PORT", "5002")
    monkeypatch.setenv("DOCKYARD_METADATA__POOL_SIZE", "3")
    settings = load_settings(path)
    assert settings.server.port == 5002
    assert settings.server.host == "0.0.0.0"  # the rest of [server] still comes from the file
    assert settings.metadata.pool_size == 3


def test_environment_variables_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("dockyard_server__port", "5004")
    assert load_settings().server.port == 5004


def test_command_line_overrides_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path, '[server]\nport = 5001\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("DOCKYARD_SERVER__PORT", "5002")
    monkeypatch.setenv("DOCKYARD_SERVER__WORKERS", "4")
    settings = load_settings(path, overrides={"server": {"port": 5003}})
    assert settings.server.port == 5003
    assert settings.server.workers == 4
    assert settings.server.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[server]\nprot = 5001\n", "server.prot"),
        ("[sever]\nport = 5001\n", "sever"),
        ("listen = 5001\n", "listen"),
        ("[storage]\nkind = 'filesystem'\nbucket_name = 'x'\n", "storage.bucket_name"),
    ],
)
def test_unknown_keys_are_named(tmp_path: Path, toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(write_toml(tmp_path, toml))
    assert f"{key}: unknown key" in str(e.value)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[server]\nport = 'http'\n", "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[server]\nport = -1\n", "server.port"),
        ("[server]\nworkers = 0\n", "server.workers"),
        ("[server]\nlog_format = 'xml'\n", "server.log_format"),
        ("[server]\nmax_manifest_size = 'huge'\n", "server.max_manifest_size"),
        ("[server]\nmax_manifest_size = '-4MiB'\n", "server.max_manifest_size"),
        ("[metadata]\npool_size = 0\n", "metadata.pool_size"),
        ("[storage]\nkind = 'floppy'\n", "storage.kind"),
        ("[storage]\nfsync = 'sometimes'\n", "storage.fsync"),
        ("server = 5\n", "server"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(write_toml(tmp_path, toml))
    assert f"\n  {key}: " in str(e.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[server]\nport = 'x'\nworkers = 0\nprot = 1\n")
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    for key in ("server.port", "server.workers", "server.prot"):
        assert key in str(e.value)


def test_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_SERVER__PORT", "five thousand")
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings()


def test_bad_command_line_value_is_named() -> None:
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings(overrides={"server": {"port": 123456}})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_file_that_is_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write_toml(tmp_path, "[server\nport = 1\n"))


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.server.port = 1


# -- durations and sizes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("24h", 86400.0),
        ("14d", 14 * 86400.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        (" 5m ", 300.0),
        (30, 30.0),
        (2.5, 2.5),
    ],
)
def test_durations(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "5", "5 m", "5min", "-5s", "s", "1w", "5M", True, None])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("4MiB", 4 << 20),
        ("500MiB", 500 << 20),
        ("2TiB", 2 << 40),
        ("512KiB", 512 << 10),
        ("1.5KiB", 1536),
        ("4MB", 4_000_000),
        (1024, 1024),
    ],
)
def test_sizes(tmp_path: Path, value: str | int, size: int) -> None:
    literal = f'"{value}"' if isinstance(value, str) else str(value)
    path = write_toml(tmp_path, f"[server]\nmax_manifest_size = {literal}\n")
    assert load_settings(path).server.max_manifest_size == size
