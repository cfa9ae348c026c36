"""Configuration: one TOML file plus ``DOCKYARD_<SECTION>__<KEY>`` environment variables.

Precedence, highest first: command-line flags, environment, TOML file, defaults. This
module is the only home of defaults. Unknown keys and bad values stop the server with a
message naming the key (``server.port: ...``).
"""

from __future__ import annotations

import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """``"90s"``, ``"5m"``, ``"24h"``, ``"14d"`` (or a number of seconds) -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.fullmatch(value.strip())
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"{value!r} is not a duration like '90s', '5m', '24h' or '14d'")


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    """``[server]``: where and how Dockyard listens."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 5000
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    data_dir: Path = Path("./data")
    public_url: str = ""
    log_format: Literal["text", "json"] = "text"
    max_manifest_size: ByteSize = ByteSize(4 << 20)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Resolved once, at load time, so nothing later depends on the working directory.
        return value.absolute()


class MetadataSettings(_Section):
    """``[metadata]``: the database holding everything but blob bytes."""

    url: str = ""
    pool_size: Annotated[int, Field(ge=1, le=1000)] = 10


class StorageSettings(_Section):
    """``[storage]``: where blob bytes live."""

    kind: Literal["filesystem"] = "filesystem"
    path: str = ""
    fsync: bool = True


_config_file: ContextVar[Path | None] = ContextVar("dockyard_config_file", default=None)


class _TomlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ returns everything at once

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        if path is None:
            return {}
        try:
            with path.open("rb") as f:
                return tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"configuration file {path} is not valid TOML: {e}") from None


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the problem."""


class Settings(BaseSettings):
    """The whole configuration tree."""

    model_config = SettingsConfigDict(
        env_prefix="DOCKYARD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server: ServerSettings = ServerSettings()
    metadata: MetadataSettings = MetadataSettings()
    storage: StorageSettings = StorageSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlSource(settings_cls)

    @property
    def metadata_url(self) -> str:
        """The metadata database URL; SQLite under the data directory by default."""
        if self.metadata.url:
            return self.metadata.url
        return f"sqlite:///{self.server.data_dir / 'metadata.db'}"

    @property
    def blob_path(self) -> Path:
        """The filesystem blob store's root directory."""
        return Path(self.storage.path) if self.storage.path else self.server.data_dir / "blobs"


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Read the configuration; raise :class:`ConfigError` naming each bad key.

    ``overrides`` are command-line flags as ``{"server": {"port": 5001}}``.
    """
    token = _config_file.set(config_file)
    try:
        return Settings(**(overrides or {}))
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{key}: {message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
    finally:
        _config_file.reset(token)
