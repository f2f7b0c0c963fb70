"""API keys: how they look, how the service holds them (digests only), how one is checked."""

import hashlib
import hmac
import logging
import math
import secrets
import string
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

KEY_PREFIX = "ttk_"
_ALPHABET = string.ascii_lowercase + string.digits
_KEY_ID_LENGTH = 8
_SECRET_LENGTH = 50  # 50 characters from 36 carry 258 bits
_CHECKSUM_LENGTH = 6
_DIGEST_HEX_LENGTH = 64


class ApiKeyConfigError(ValueError):
    """An entry of the configured keys cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ApiKeyEntry:
    """One accepted key, known only by the SHA-256 of its text."""

    client: str
    digest: bytes
    expires_at: datetime | None = None


def digest_of(key: str | bytes) -> bytes:
    raw = key.encode("ascii") if isinstance(key, str) else key
    return hashlib.sha256(raw).digest()


def new_api_key() -> str:
    """A fresh key: `ttk_`, a public key id, a random secret, and a checksum.

    The checksum lets a mistyped or made-up key be refused before any lookup, and the
    prefix lets secret scanners recognise a leaked key.
    """
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(_KEY_ID_LENGTH))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LENGTH))
    body = f"{KEY_PREFIX}{key_id}_{secret}"
    return body + _checksum(body)


def key_id_of(key: bytes) -> str | None:
    """The public id of a well-formed key (checksum included), else None."""
    expected_length = len(KEY_PREFIX) + _KEY_ID_LENGTH + 1 + _SECRET_LENGTH + _CHECKSUM_LENGTH
    if len(key) != expected_length or not key.startswith(KEY_PREFIX.encode()):
        return None
    try:
        text = key.decode("ascii")
    except UnicodeDecodeError:
        return None
    body, checksum = text[:-_CHECKSUM_LENGTH], text[-_CHECKSUM_LENGTH:]
    key_id = body[len(KEY_PREFIX) : len(KEY_PREFIX) + _KEY_ID_LENGTH]
    if body[len(KEY_PREFIX) + _KEY_ID_LENGTH] != "_":
        return None
    if not set(key_id + body[-_SECRET_LENGTH:] + checksum) <= set(_ALPHABET):
        return None
    if not hmac.compare_digest(checksum, _checksum(body)):
        return None
    return key_id


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode("ascii"))
    digits = []
    for _ in range(_CHECKSUM_LENGTH):
        value, digit = divmod(value, len(_ALPHABET))
        digits.append(_ALPHABET[digit])
    return "".join(digits)


def parse_entries(text: str, *, separator: str = ",") -> list[ApiKeyEntry]:
    """Parse `CLIENT:SHA256HEX[;expires=TIMESTAMP]` entries.

    Blank entries are skipped, and in a file (one entry a line) so is anything after `#`.
    """
    in_file = separator == "\n"
    entries = []
    for position, raw in enumerate(text.split(separator), start=1):
        entry = raw.split("#", 1)[0].strip() if in_file else raw.strip()
        if entry:
            entries.append(_parse_entry(entry, f"{'line' if in_file else 'entry'} {position}"))
    return entries


_RESERVED_IN_NAMES = frozenset(",:;#")


def client_name_problem(name: str) -> str | None:
    """Why `name` cannot name a client in an entry, or None if it can."""
    if not name or name != name.strip():
        return "must not be empty or start or end with a space"
    if not name.isascii() or not name.isprintable():
        return "must be printable ASCII"
    if reserved := sorted(_RESERVED_IN_NAMES & set(name)):
        return f"must not contain {' '.join(reserved)} (they separate the parts of an entry)"
    return None


def _parse_entry(entry: str, where: str) -> ApiKeyEntry:
    head, _, options = entry.partition(";")
    client, colon, digest_hex = head.rpartition(":")
    client = client.strip()
    digest_hex = digest_hex.strip().lower()
    if not colon or not client:
        raise ApiKeyConfigError(f"{where} is not CLIENT:SHA256HEX")
    if problem := client_name_problem(client):
        raise ApiKeyConfigError(f"{where}: the client name {problem}")
    if len(digest_hex) != _DIGEST_HEX_LENGTH or not set(digest_hex) <= set(string.hexdigits):
        raise ApiKeyConfigError(
            f"{where} ({client}): the digest must be 64 hex digits, "
            "the SHA-256 of the key, never the key itself",
        )
    expires_at = None
    if options.strip():
        name, equals, value = options.partition("=")
        if name.strip() != "expires" or not equals:
            raise ApiKeyConfigError(f"{where} ({client}): the only option is ;expires=TIMESTAMP")
        expires_at = _parse_expiry(value.strip(), f"{where} ({client})")
    return ApiKeyEntry(client=client, digest=bytes.fromhex(digest_hex), expires_at=expires_at)


def _parse_expiry(value: str, where: str) -> datetime:
    try:
        expires_at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        expires_at = None
    if expires_at is None or expires_at.utcoffset() is None:
        raise ApiKeyConfigError(f"{where}: expires must be a timestamp with an offset")
    return expires_at.astimezone(UTC)


def entry_line(client: str, key: str, expires_at: datetime | None = None) -> str:
    """The configuration entry that accepts `key` for `client`."""
    line = f"{client}:{digest_of(key).hex()}"
    if expires_at is not None:
        line += f";expires={expires_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return line


class ApiKeyRegistry:
    """The accepted keys; tells which client a presented key belongs to."""

    def __init__(self, entries: Iterable[ApiKeyEntry]) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def client_for(self, presented: bytes, now: datetime) -> tuple[str | None, str]:
        """The client whose unexpired key this is (or None), and why.

        Every entry is compared, in constant time, so the answer takes as long for the
        first entry as for the last or for none.
        """
        presented_digest = hashlib.sha256(presented).digest()
        found = None
        for entry in self._entries:
            # Of several entries for one key (a key being extended), the one that lasts
            # longest decides, whatever their order.
            if hmac.compare_digest(entry.digest, presented_digest) and (
                found is None or _lasts_longer(entry, found)
            ):
                found = entry
        if found is None:
            return None, "unknown"
        if found.expires_at is not None and found.expires_at <= now:
            return None, "expired"
        return found.client, "ok"


def _lasts_longer(entry: ApiKeyEntry, than: ApiKeyEntry) -> bool:
    if than.expires_at is None:
        return False
    return entry.expires_at is None or entry.expires_at > than.expires_at


class ApiKeySource:
    """The keys from the environment plus those of a file that may change while we run.

    The file is looked at again (a stat, no read) at most once a second, and read when
    it changed or after `request_reload` (SIGHUP). A file that fails to parse leaves the
    previous keys in force and says why in the log; revoking a key is removing its line.
    """

    RECHECK_S = 1.0

    def __init__(
        self,
        fixed: Iterable[ApiKeyEntry],
        path: Path | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fixed = tuple(fixed)
        self._path = path
        self._clock = clock
        self._signature: tuple[int, int, int] | None = None
        self._checked_at = -math.inf
        self._registry = ApiKeyRegistry(self._fixed)
        if path is not None:
            self._reload(initial=True)

    def request_reload(self) -> None:
        self._signature = None
        self._checked_at = -math.inf

    def current(self) -> ApiKeyRegistry:
        if self._path is not None and self._clock() - self._checked_at >= self.RECHECK_S:
            self._reload(initial=False)
        return self._registry

    def _reload(self, *, initial: bool) -> None:
        assert self._path is not None
        self._checked_at = self._clock()
        try:
            stat = self._path.stat()
            signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if signature == self._signature:
                return
            text = self._path.read_text(encoding="utf-8-sig")
            entries = parse_entries(text, separator="\n")
        except (OSError, UnicodeDecodeError, ApiKeyConfigError) as err:
            if initial:
                raise ApiKeyConfigError(f"{self._path}: {err}") from None
            logger.warning("api key file not reloaded, keeping the previous keys: %s", err)
            return
        self._signature = signature
        self._registry = ApiKeyRegistry((*self._fixed, *entries))
        if not initial:
            logger.info("api key file reloaded entries=%d", len(entries))
