"""API keys: how they look, how the service holds them (digests only), how one is checked."""

import hashlib
import hmac
import secrets
import string
import zlib
from dataclasses import dataclass

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
    """Parse `CLIENT:SHA256HEX` entries; blank entries and `#` comments are skipped."""
    entries = []
    for position, raw in enumerate(text.split(separator), start=1):
        entry = raw.split("#", 1)[0].strip() if separator == "\n" else raw.strip()
        if not entry:
            continue
        client, colon, digest_hex = entry.rpartition(":")
        client = client.strip()
        digest_hex = digest_hex.strip().lower()
        if not colon or not client:
            raise ApiKeyConfigError(f"entry {position} is not CLIENT:SHA256HEX")
        if not client.isprintable() or not client.isascii():
            raise ApiKeyConfigError(f"entry {position}: the client name must be printable ASCII")
        if len(digest_hex) != _DIGEST_HEX_LENGTH or not set(digest_hex) <= set(string.hexdigits):
            raise ApiKeyConfigError(
                f"entry {position} ({client}): the digest must be 64 hex digits, "
                "the SHA-256 of the key, never the key itself",
            )
        entries.append(ApiKeyEntry(client=client, digest=bytes.fromhex(digest_hex)))
    return entries


class ApiKeyRegistry:
    """The accepted keys; tells which client a presented key belongs to."""

    def __init__(self, entries: list[ApiKeyEntry]) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def client_for(self, presented: bytes) -> str | None:
        """The client whose key this is, or None.

        Every entry is compared, in constant time, so the answer takes as long for the
        first entry as for the last or for none.
        """
        presented_digest = hashlib.sha256(presented).digest()
        found = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, presented_digest):
                found = entry.client
        return found
