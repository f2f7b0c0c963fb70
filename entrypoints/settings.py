"""The service's configuration: read from the environment once, typed and checked."""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from adapters.database import PoolSettings, asyncpg_url
from entrypoints.api_keys import ApiKeyConfigError, ApiKeyEntry, parse_entries

PREFIX = "TASK_TRACKER_"
_LOG_FORMATS = ("auto", "json", "text")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    read_database_url: str | None = None
    data_dir: Path = Path(".task-tracker")
    api_keys: tuple[ApiKeyEntry, ...] = ()
    api_keys_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    pool: PoolSettings = field(default_factory=PoolSettings)
    auth_failures_per_minute: int = 60
    request_timeout_ms: int = 15_000
    shutdown_grace_ms: int = 30_000
    drain_delay_ms: int = 0
    docs_enabled: bool = False
    log_level: str = "INFO"
    log_format: str = "auto"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `TASK_TRACKER_*` variables; raise SettingsError on a bad one."""
    env = _Environment(os.environ if environ is None else environ)
    database_url = env.get("DATABASE_URL", _database_url, None)
    read_database_url = env.get("READ_DATABASE_URL", _database_url, None)

    keys_text = env.get("API_KEYS", str, "")
    api_keys = env.check("API_KEYS", lambda: tuple(parse_entries(keys_text)))
    keys_file = env.get("API_KEYS_FILE", Path, None)
    if keys_file is not None:
        # Read now only to refuse a broken file at start-up; the service re-reads it.
        env.check("API_KEYS_FILE", lambda: read_key_file(keys_file))

    defaults = Settings()
    pool = PoolSettings(
        size=env.get("POOL_SIZE", _int_between(1, 1000), PoolSettings.size),
        acquire_timeout_s=env.get(
            "POOL_TIMEOUT_MS",
            _int_between(1, 600_000),
            int(PoolSettings.acquire_timeout_s * 1000),
        )
        / 1000,
        statement_timeout_ms=env.get(
            "STATEMENT_TIMEOUT_MS",
            _int_between(1, 3_600_000),
            PoolSettings.statement_timeout_ms,
        ),
        statement_cache_size=env.get(
            "STATEMENT_CACHE_SIZE",
            _int_between(0, 10_000),
            PoolSettings.statement_cache_size,
        ),
        transaction_pooler=env.get(
            "TRANSACTION_POOLER",
            _boolean,
            PoolSettings.transaction_pooler,
        ),
    )
    return Settings(
        database_url=database_url,
        read_database_url=read_database_url,
        data_dir=env.get("DATA_DIR", Path, defaults.data_dir),
        api_keys=api_keys,
        api_keys_file=keys_file,
        host=env.get("HOST", str, defaults.host),
        port=env.get("PORT", _int_between(0, 65535), defaults.port),
        workers=env.get("WORKERS", _int_between(1, 64), defaults.workers),
        pool=pool,
        auth_failures_per_minute=env.get(
            "AUTH_FAILURES_PER_MINUTE",
            _int_between(1, 1_000_000),
            defaults.auth_failures_per_minute,
        ),
        request_timeout_ms=env.get(
            "REQUEST_TIMEOUT_MS",
            _int_between(1, 3_600_000),
            defaults.request_timeout_ms,
        ),
        shutdown_grace_ms=env.get(
            "SHUTDOWN_GRACE_MS",
            _int_between(0, 3_600_000),
            defaults.shutdown_grace_ms,
        ),
        drain_delay_ms=env.get(
            "DRAIN_DELAY_MS",
            _int_between(0, 3_600_000),
            defaults.drain_delay_ms,
        ),
        docs_enabled=env.get("DOCS_ENABLED", _boolean, defaults.docs_enabled),
        log_level=env.get("LOG_LEVEL", _one_of(_LOG_LEVELS, upper=True), defaults.log_level),
        log_format=env.get("LOG_FORMAT", _one_of(_LOG_FORMATS), defaults.log_format),
    )


def read_key_file(path: Path) -> tuple[ApiKeyEntry, ...]:
    """Entries one per line; blank lines and `#` comments are ignored."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise ApiKeyConfigError(f"cannot read {path}: {err.strerror}") from err
    return tuple(parse_entries(text, separator="\n"))


class _Environment:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._environ.get(PREFIX + name)
        if raw is None or raw.strip() == "":
            return default
        return self.check(name, lambda: parse(raw.strip()))

    def check(self, name: str, build: Callable[[], T]) -> T:
        try:
            return build()
        except (ValueError, TypeError) as err:
            raise SettingsError(f"{PREFIX}{name}: {err}") from None


def _database_url(url: str) -> str:
    # The URL may hold a password, so the message never repeats it.
    try:
        asyncpg_url(url)
    except Exception:
        raise ValueError("expected postgresql://user:password@host:port/database") from None
    return url


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not raw.isdigit():
            raise ValueError(f"expected a whole number, got {raw!r}")
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _one_of(choices: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")
