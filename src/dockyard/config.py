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
    model_validator,
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
    # Validated (made absolute) even when defaulted; see _absolute.
    data_dir: Annotated[Path, Field(validate_default=True)] = Path("./data")
    public_url: str = ""
    log_format: Literal["text", "json"] = "text"
    max_manifest_size: ByteSize = ByteSize(4 << 20)
    tls_cert: str = ""
    tls_key: str = ""
    # Maintenance: pulls only; pushes and deletes answer 405 UNSUPPORTED (docs/lifecycle.md).
    read_only: bool = False

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Resolved once, at load time, so nothing later depends on the working directory.
        return value.absolute()

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            missing = "tls_key" if self.tls_cert else "tls_cert"
            raise ValueError(f"HTTPS needs both tls_cert and tls_key; {missing} is empty")
        return self


class MetadataSettings(_Section):
    """``[metadata]``: the database holding everything but blob bytes."""

    url: str = ""
    pool_size: Annotated[int, Field(ge=1, le=1000)] = 10
    # PostgreSQL only: the server cancels a statement running longer than this.
    statement_timeout: Annotated[Duration, Field(gt=0)] = 30.0
    # PostgreSQL only: how long a request waits for a free pooled connection.
    pool_timeout: Annotated[Duration, Field(gt=0)] = 30.0


class StorageSettings(_Section):
    """``[storage]``: where blob bytes live."""

    kind: Literal["filesystem", "s3", "gcs", "azure"] = "filesystem"
    path: str = ""
    fsync: bool = True
    # Object stores (see docs/scaling.md). gcs and azure take credentials from the
    # environment only; bucket is the Azure container.
    bucket: str = ""
    prefix: str = ""
    endpoint: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    path_style: bool = False
    redirect: bool = False
    redirect_ttl: Annotated[Duration, Field(gt=0, le=7 * 86400)] = 300.0

    @model_validator(mode="after")
    def _bucket_named(self) -> StorageSettings:
        if self.kind != "filesystem" and not self.bucket:
            raise ValueError(f'kind = "{self.kind}" needs a bucket')
        if self.redirect and self.kind == "filesystem":
            raise ValueError("redirect needs an object store (kind s3, gcs or azure)")
        return self


class TrustedIssuer(_Section):
    """One external token issuer whose tokens Dockyard accepts (``[[auth.trusted_issuers]]``).

    Its key is a PEM public key file (``public_key``) or a JWKS file (``jwks``): exactly one.
    """

    issuer: Annotated[str, Field(min_length=1)]
    public_key: str = ""
    jwks: str = ""

    @model_validator(mode="after")
    def _one_key(self) -> TrustedIssuer:
        if bool(self.public_key) == bool(self.jwks):
            raise ValueError(f"issuer {self.issuer!r} needs exactly one of public_key or jwks")
        return self


class AuthSettings(_Section):
    """``[auth]``: who may pull, push and delete what (see docs/security.md)."""

    mode: Literal["none", "basic", "token"] = "none"
    htpasswd: str = ""
    policy: str = ""
    anonymous_pull: tuple[str, ...] = ()
    realm: str = ""
    service: Annotated[str, Field(min_length=1)] = "dockyard"
    issuer: Annotated[str, Field(min_length=1)] = "dockyard"
    signing_key: str = ""
    token_ttl: Annotated[Duration, Field(gt=0, le=86400)] = 300.0
    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    # Failed logins allowed per user and client address before a lockout of login_lockout.
    login_attempts: Annotated[int, Field(ge=1, le=1000)] = 5
    login_lockout: Annotated[Duration, Field(gt=0)] = 300.0

    @model_validator(mode="after")
    def _distinct_issuers(self) -> AuthSettings:
        names = [t.issuer for t in self.trusted_issuers]
        if self.issuer in names:
            raise ValueError(f"trusted_issuers repeats Dockyard's own issuer {self.issuer!r}")
        if len(set(names)) != len(names):
            raise ValueError("trusted_issuers names an issuer twice")
        return self


class GcSettings(_Section):
    """``[gc]``: online garbage collection and upload expiry (docs/lifecycle.md)."""

    # Unreferenced blobs and blob links younger than this are kept: a push uploads its
    # blobs before its manifest, and the grace period is what protects them meanwhile.
    grace: Annotated[Duration, Field(ge=0)] = 3600.0
    upload_expiry: Annotated[Duration, Field(gt=0)] = 86400.0
    # 0 (or "") = never inside serve; only ``dockyard gc`` collects.
    interval: Annotated[Duration, Field(ge=0)] = 0.0

    @field_validator("interval", mode="before")
    @classmethod
    def _empty_is_never(cls, value: Any) -> Any:
        return 0.0 if value == "" else value


class TagDeletion(_Section):
    """``delete_tags`` of a retention rule: tags matching ``pattern`` older than ``older_than``."""

    pattern: Annotated[str, Field(min_length=1)]
    older_than: Annotated[Duration, Field(ge=0)]


def _one_or_many(value: Any) -> Any:
    # ``delete_tags = { pattern = ..., older_than = ... }`` or an array of such tables.
    return [value] if isinstance(value, dict) else value


def _optional_duration(value: Any) -> float | None:
    if value is None or value == "":
        return None
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError("a duration must not be negative")
    return seconds


class RetentionRule(_Section):
    """One ``[[retention]]`` rule, applied to the repositories its pattern matches.

    Tags matching ``keep_tags`` and the ``keep_last`` newest tags are never deleted;
    of the others, all go when ``keep_last`` is set, and those matching a
    ``delete_tags`` pattern go once older than its ``older_than``. Untagged manifests
    older than ``delete_untagged_older_than`` are deleted ("" = never).
    """

    repositories: Annotated[str, Field(min_length=1)]
    # Recorded in tag history as "retention:<name>"; "" = "rule-<n>", n counting from 1.
    name: Annotated[str, Field(max_length=40, pattern=r"^[A-Za-z0-9._-]*$")] = ""
    keep_last: Annotated[int, Field(ge=0)] = 0
    keep_tags: tuple[str, ...] = ()
    delete_tags: Annotated[tuple[TagDeletion, ...], BeforeValidator(_one_or_many)] = ()
    delete_untagged_older_than: Annotated[float | None, BeforeValidator(_optional_duration)] = None


class QuotaSettings(_Section):
    """One ``[[quota]]``: the most blob bytes a top-level namespace may hold."""

    namespace: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")]
    size: ByteSize


class UpstreamSettings(_Section):
    """One ``[[upstreams]]`` table: a registry Dockyard pulls through and caches.

    Its content is served under ``prefix`` (``"hub/"``: ``hub/library/alpine``); an empty
    prefix is mirror mode, serving the upstream's names as they are (see docs/cache.md).
    """

    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")]
    url: Annotated[str, Field(pattern=r"^https?://[^/]+/?$")]
    prefix: Annotated[str, Field(pattern=r"^$|^[a-z0-9]+(?:[._-][a-z0-9]+)*/$")] = ""
    username: str = ""
    password: str = ""
    # 0: revalidate every tag request with a HEAD on the upstream.
    tag_ttl: Annotated[Duration, Field(ge=0)] = 300.0
    stale_if_error: bool = True
    # "": unbounded; otherwise least recently pulled blobs go first above this size.
    max_size: ByteSize | Literal[""] = ""
    # 0: off; otherwise cached blobs not pulled for this long are removed.
    max_idle: Annotated[Duration, Field(ge=0)] = 0.0
    # "auto": by the URL's host (registry-1.docker.io); Docker Hub serves library/ short names.
    docker_hub: Literal["auto", "yes", "no"] = "auto"
    connect_timeout: Annotated[Duration, Field(gt=0)] = 5.0
    read_timeout: Annotated[Duration, Field(gt=0)] = 30.0
    # How long an upstream 404 is remembered, and an upstream that keeps failing is skipped.
    negative_ttl: Annotated[Duration, Field(ge=0)] = 30.0
    backoff: Annotated[Duration, Field(ge=0)] = 30.0

    @model_validator(mode="after")
    def _credentials_pair(self) -> UpstreamSettings:
        if bool(self.username) != bool(self.password):
            raise ValueError(f"upstream {self.name!r} needs both username and password, or neither")
        return self


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

    # A factory, not an instance: the default data_dir resolves when settings load.
    server: ServerSettings = Field(default_factory=ServerSettings)
    metadata: MetadataSettings = MetadataSettings()
    storage: StorageSettings = StorageSettings()
    auth: AuthSettings = AuthSettings()
    gc: GcSettings = GcSettings()
    retention: tuple[RetentionRule, ...] = ()
    quota: tuple[QuotaSettings, ...] = ()
    upstreams: tuple[UpstreamSettings, ...] = ()

    @model_validator(mode="after")
    def _distinct_upstreams(self) -> Settings:
        for key in ("name", "prefix"):
            values = [getattr(u, key) for u in self.upstreams]
            if len(set(values)) != len(values):
                raise ValueError(f"upstreams: two upstreams have the same {key}")
        return self

    @model_validator(mode="after")
    def _one_quota_per_namespace(self) -> Settings:
        names = [q.namespace for q in self.quota]
        if len(set(names)) != len(names):
            raise ValueError("quota names a namespace twice")
        return self

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

    @property
    def htpasswd_path(self) -> Path:
        """The bcrypt htpasswd file of users; ``<data_dir>/htpasswd`` by default."""
        return Path(self.auth.htpasswd) if self.auth.htpasswd else self.server.data_dir / "htpasswd"

    @property
    def signing_key_path(self) -> Path:
        """The token signing key (PEM); generated under the data directory by default."""
        if self.auth.signing_key:
            return Path(self.auth.signing_key)
        return self.server.data_dir / "auth" / "signing-key.pem"


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
