"""Settings shared by every process: env, TOML and flags, validated once; one-line errors."""

from __future__ import annotations

import contextvars
import ipaddress
import re
import socket
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import BeforeValidator, ValidationError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

S = TypeVar("S", bound="ProcessSettings")
ENV_PREFIX = "UNITEDCRON_"
_URL_PASSWORD_RE = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_toml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar("toml_path", default=None)


class HostPort(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(value: Any) -> HostPort:
    """`host:port` or `[v6]:port`; port 0 means "any free port" (tests)."""
    if isinstance(value, HostPort):
        return value
    if isinstance(value, tuple | list) and len(value) == 2:
        value = f"{value[0]}:{value[1]}"
    if not isinstance(value, str):
        raise ValueError("must be host:port")
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port with a port 0-65535")
    return HostPort(host, int(port))


def parse_host_ports(value: Any) -> tuple[HostPort, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(parse_host_port(v) for v in items if not isinstance(v, str) or v.strip())
    if not out:
        raise ValueError("needs at least one host:port")
    return out


def parse_secrets(value: Any) -> tuple[bytes, ...]:
    """One secret, or several comma-separated during a rotation (the first is current)."""
    if isinstance(value, tuple) and all(isinstance(v, bytes) for v in value):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be set (a random string of at least 16 characters)")
    out = tuple(v.strip().encode() for v in value.split(",") if v.strip())
    if any(len(s) < 16 for s in out):
        raise ValueError("each secret must be at least 16 characters")
    return out


def parse_optional_host_port(value: Any) -> HostPort | None:
    """Like parse_host_port, but empty (or `off`) means "not at all"."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off")):
        return None
    return parse_host_port(value)


# NoDecode: pydantic-settings would otherwise read tuple-typed env values as JSON.
HostPortField = Annotated[HostPort, BeforeValidator(parse_host_port), NoDecode]
HostPortsField = Annotated[tuple[HostPort, ...], BeforeValidator(parse_host_ports), NoDecode]
OptionalHostPortField = Annotated[
    HostPort | None, BeforeValidator(parse_optional_host_port), NoDecode
]
SecretsField = Annotated[tuple[bytes, ...], BeforeValidator(parse_secrets), NoDecode]


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def own_address() -> str:
    """The address this host uses to reach others (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class ProcessSettings(BaseSettings):
    """Base of each process's config: UNITEDCRON_* env, then `--config` TOML, then defaults."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True
    )

    log_level: str = "info"
    log_format: str = "auto"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        path = _toml_path.get()
        if path is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=path),)
        return sources


def load_settings(cls: type[S], config_file: Path | None = None, **flags: Any) -> S:
    """Build a process's config once; flags that are None do not override."""
    overrides = {k: v for k, v in flags.items() if v is not None}
    token = _toml_path.set(config_file)
    try:
        if config_file is not None:
            with config_file.open("rb") as f:
                tomllib.load(f)  # fail here, with the file named, on a syntax error
        return cls(**overrides)
    finally:
        _toml_path.reset(token)


def mask_url_passwords(text: str) -> str:
    """`scheme://user:password@host` → `scheme://user:***@host`, wherever it occurs."""
    return _URL_PASSWORD_RE.sub(r"\1***@", text)


def settings_or_exit(cls: type[S], config_file: Path | None = None, **flags: Any) -> S:
    """load_settings, but a bad setting stops the process with one line naming it."""
    try:
        return load_settings(cls, config_file, **flags)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ENV_PREFIX + "_".join(str(p) for p in err["loc"][:1]).upper()
        value = err.get("input")
        shown = "" if "secret" in name.lower() else f" (got {value!r})"
        line = f"unitedcron: bad setting {name}: {err['msg']}{shown}\n"
        sys.stderr.write(mask_url_passwords(line))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        sys.stderr.write(f"unitedcron: cannot read config file {config_file}: {exc}\n")
    raise SystemExit(2)
