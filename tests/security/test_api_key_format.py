"""The key format and the configuration entries: what a key looks like, how an entry reads.

The layout comes from docs/operations.md: `ttk_`, an 8-character public id, `_`, 50 random
characters and a 6-character checksum, all lower-case letters and digits.
"""

import hashlib
import math
import re
import string
import traceback
import zlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoints.api_keys import (
    ApiKeyConfigError,
    ApiKeyEntry,
    ApiKeyRegistry,
    entry_line,
    key_id_of,
    new_api_key,
    parse_entries,
)
from entrypoints.settings import SettingsError, load_settings
from tests.data import at

# docs/operations.md: `ttk_0ryygoxd_<50 random characters><6-character checksum>`.
KEY_SHAPE = re.compile(r"ttk_(?P<id>[a-z0-9]{8})_(?P<secret>[a-z0-9]{50})(?P<checksum>[a-z0-9]{6})")
ALPHABET = string.ascii_lowercase + string.digits
KEY = new_api_key()
DIGEST = hashlib.sha256(KEY.encode()).hexdigest()
# Long enough that no fixed wording of a message could contain it by chance.
TELLING_LENGTH = 16


def checksummed(body: str) -> str:
    """`body` and the checksum the service expects of it.

    Written from entrypoints/api_keys.py (`_checksum`): the CRC-32 of the body as six
    digits of ALPHABET, least significant first. A test below checks that minted keys
    agree, so a change of scheme fails loudly here instead of making tests vacuous.
    """
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(6):
        value, digit = divmod(value, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return body + "".join(digits)


def assert_reveals_nothing(text: str, *secrets: str) -> None:
    """No secret, nor any telling piece of one, appears in `text`, in either case."""
    lowered = text.lower()
    for secret in secrets:
        for start in range(len(secret) - TELLING_LENGTH + 1):
            piece = secret[start : start + TELLING_LENGTH].lower()
            assert piece not in lowered, f"{text!r} repeats part of a secret"


# --- the key itself ---------------------------------------------------------------------


def test_new_key_has_the_documented_prefix_id_secret_and_checksum() -> None:
    key = new_api_key()

    shape = KEY_SHAPE.fullmatch(key)

    assert shape is not None, key
    assert key_id_of(key.encode()) == shape["id"]


def test_new_key_carries_at_least_256_random_bits() -> None:
    keys = [new_api_key() for _ in range(200)]

    shapes = [KEY_SHAPE.fullmatch(key) for key in keys]

    secrets = [shape["secret"] for shape in shapes if shape is not None]
    assert len(secrets) == len(keys)
    # 10,000 draws show every symbol the generator uses; the id is public and not counted.
    symbols = set("".join(secrets))
    assert symbols == set(ALPHABET)
    assert len(secrets[0]) * math.log2(len(symbols)) >= 256
    assert len(set(keys)) == len(keys)
    assert len({key_id_of(key.encode()) for key in keys}) == len(keys)


def test_checksum_helper_of_these_tests_agrees_with_minted_keys() -> None:
    keys = [new_api_key() for _ in range(50)]

    recomputed = [checksummed(key[:-6]) for key in keys]

    assert recomputed == keys


def test_every_single_byte_change_of_a_key_is_refused() -> None:
    key = KEY.encode()

    accepted = [
        (position, replacement)
        for position in range(len(key))
        for replacement in range(256)
        if replacement != key[position]
        and key_id_of(key[:position] + bytes([replacement]) + key[position + 1 :]) is not None
    ]

    assert accepted == []


def test_every_swap_of_two_neighbouring_characters_is_refused() -> None:
    swapped = [
        KEY[:i] + KEY[i + 1] + KEY[i] + KEY[i + 2 :]
        for i in range(len(KEY) - 1)
        if KEY[i] != KEY[i + 1]
    ]

    accepted = [key for key in swapped if key_id_of(key.encode()) is not None]

    assert swapped
    assert accepted == []


def test_every_truncation_and_extension_of_a_key_is_refused() -> None:
    variants = [KEY[:length] for length in range(len(KEY))]
    variants += [KEY + extra for extra in ("a", "0", " ", "_", KEY)]
    variants += [KEY[1:], " " + KEY, KEY.upper()]

    accepted = [variant for variant in variants if key_id_of(variant.encode()) is not None]

    assert accepted == []


@pytest.mark.parametrize(
    "body",
    [
        "ttk_ABCDEFGH_" + "a" * 50,  # upper-case id
        "ttk_abcdefgh_" + "A" * 50,  # upper-case secret
        "ttk_abcd-fgh_" + "a" * 50,  # a character outside the alphabet in the id
        "ttk_abcdefgh-" + "a" * 50,  # the wrong separator
        "ttk-abcdefgh_" + "a" * 50,  # the wrong prefix
    ],
)
def test_key_outside_the_format_is_refused_even_with_a_matching_checksum(body: str) -> None:
    key = checksummed(body)

    key_id = key_id_of(key.encode())

    assert key_id is None


@pytest.mark.parametrize(
    "presented",
    [b"", b"ttk_", b"wrong", b"\xff" * 69, "ttk_é".encode() + KEY.encode()[6:], b"\x00" * 69],
    ids=["empty", "prefix-only", "short-word", "high-bytes", "non-ascii", "nul-bytes"],
)
def test_key_id_of_a_presented_value_that_is_no_key_is_none(presented: bytes) -> None:
    key_id = key_id_of(presented)

    assert key_id is None


# --- entries: the errors an operator reads -----------------------------------------------


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("scheduler", "entry 1 is not CLIENT:SHA256HEX"),
        (f":{DIGEST}", "entry 1 is not CLIENT:SHA256HEX"),
        (KEY, "entry 1 is not CLIENT:SHA256HEX"),
        (f"scheduler:{KEY}", "entry 1 (scheduler): the digest must be 64 hex digits"),
        (f"scheduler:{DIGEST[:-1]}", "entry 1 (scheduler): the digest must be 64 hex digits"),
        (f"scheduler:{DIGEST}00", "entry 1 (scheduler): the digest must be 64 hex digits"),
        (f"scheduler:{'g' * 64}", "entry 1 (scheduler): the digest must be 64 hex digits"),
        (f"schédule:{DIGEST}", "entry 1: the client name must be printable ASCII"),
        (f"sched\x07:{DIGEST}", "entry 1: the client name must be printable ASCII"),
        (f"scheduler:{DIGEST};valid=1", "entry 1 (scheduler): the only option is ;expires="),
        (f"scheduler:{DIGEST};expires", "entry 1 (scheduler): the only option is ;expires="),
        (f"scheduler:{DIGEST};expires=", "entry 1 (scheduler): expires must be a timestamp"),
        (f"scheduler:{DIGEST};expires=soon", "entry 1 (scheduler): expires must be a timestamp"),
        (f"scheduler:{DIGEST};expires={KEY}", "entry 1 (scheduler): expires must be a timestamp"),
    ],
    ids=[
        "no-colon",
        "no-client",
        "the-key-alone",
        "the-key-instead-of-its-digest",
        "digest-one-short",
        "digest-one-byte-long",
        "digest-not-hex",
        "client-not-ascii",
        "client-not-printable",
        "unknown-option",
        "option-without-value",
        "empty-expiry",
        "expiry-not-a-timestamp",
        "the-key-as-expiry",
    ],
)
def test_malformed_entry_is_refused_with_a_message_that_never_repeats_key_or_digest(
    entry: str,
    says: str,
) -> None:
    with pytest.raises(ApiKeyConfigError) as refused:
        parse_entries(entry)

    message = str(refused.value)
    assert says in message
    assert_reveals_nothing(message, KEY, DIGEST)
    assert_reveals_nothing("".join(traceback.format_exception(refused.value)), KEY, DIGEST)


def test_error_in_a_list_names_the_entry_by_position() -> None:
    text = f"{entry_line('reporter', new_api_key())}, ,scheduler:{KEY}"

    with pytest.raises(ApiKeyConfigError) as refused:
        parse_entries(text)

    assert str(refused.value).startswith("entry 3 (scheduler):")


def test_error_in_a_file_names_the_line_counting_blanks_and_comments() -> None:
    lines = ["# keys of the nightly pass", "", entry_line("reporter", new_api_key()), f"s:{KEY}"]

    with pytest.raises(ApiKeyConfigError) as refused:
        parse_entries("\n".join(lines), separator="\n")

    assert str(refused.value).startswith("line 4 (s):")


def test_settings_refuse_a_pasted_key_naming_the_variable_and_not_the_key() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({"TASK_TRACKER_API_KEYS": f"scheduler:{KEY}"})

    message = str(refused.value)
    assert message.startswith("TASK_TRACKER_API_KEYS: entry 1 (scheduler):")
    assert_reveals_nothing("".join(traceback.format_exception(refused.value)), KEY, DIGEST)


def test_settings_refuse_a_bad_key_file_naming_the_variable_and_not_the_key(
    tmp_path: Path,
) -> None:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(f"{entry_line('scheduler', new_api_key())}\nscheduler:{KEY}\n")

    with pytest.raises(SettingsError) as refused:
        load_settings({"TASK_TRACKER_API_KEYS_FILE": str(keys_file)})

    message = str(refused.value)
    assert message.startswith("TASK_TRACKER_API_KEYS_FILE: line 2 (scheduler):")
    assert_reveals_nothing("".join(traceback.format_exception(refused.value)), KEY, DIGEST)


# --- expiry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("2027-03-04T16:46:22Z", "2027-03-04T16:46:22Z"),
        ("2027-03-04T17:46:22+01:00", "2027-03-04T16:46:22Z"),
        ("2027-03-04T11:16:22-05:30", "2027-03-04T16:46:22Z"),
        (" 2027-03-04T16:46:22.250000+00:00 ", "2027-03-04T16:46:22.25Z"),
        ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z"),
    ],
    ids=["zulu", "plus-offset", "minus-offset", "fraction-and-spaces", "in-the-past"],
)
def test_expiry_with_an_offset_is_read_as_that_instant_in_utc(written: str, meant: str) -> None:
    [entry] = parse_entries(f"scheduler:{DIGEST};expires={written}")

    assert entry.expires_at == at(meant)
    assert entry.expires_at is not None
    assert entry.expires_at.tzinfo == UTC


@pytest.mark.parametrize(
    "written",
    ["2027-03-04T16:46:22", "2027-03-04", "2027-03-04 16:46", "1709570782", "tomorrow"],
)
def test_expiry_without_an_offset_is_refused(written: str) -> None:
    with pytest.raises(ApiKeyConfigError, match="expires must be a timestamp with an offset"):
        parse_entries(f"scheduler:{DIGEST};expires={written}")


def test_key_is_refused_as_expired_from_the_instant_of_its_expiry() -> None:
    expires_at = at("2027-03-04T16:46:22Z")
    registry = ApiKeyRegistry([ApiKeyEntry("scheduler", bytes.fromhex(DIGEST), expires_at)])

    before = registry.client_for(KEY.encode(), expires_at - timedelta(microseconds=1))
    at_expiry = registry.client_for(KEY.encode(), expires_at)
    unknown = registry.client_for(new_api_key().encode(), expires_at - timedelta(days=1))

    assert before == ("scheduler", "ok")
    assert at_expiry == (None, "expired")
    assert unknown == (None, "unknown")


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(("expired", "valid"), id="expired-entry-first"),
        pytest.param(("valid", "expired"), id="valid-entry-first"),
    ],
)
def test_key_with_one_unexpired_entry_is_accepted_whatever_the_order(
    order: tuple[str, str],
) -> None:
    # As when an operator extends a key's life with a second line and has not yet removed
    # the first, or the environment and the file both list the key.
    now = at("2027-03-04T16:46:22Z")
    expiry = {"expired": now - timedelta(days=1), "valid": now + timedelta(days=30)}
    registry = ApiKeyRegistry(
        ApiKeyEntry("scheduler", bytes.fromhex(DIGEST), expiry[which]) for which in order
    )

    answer = registry.client_for(KEY.encode(), now)

    assert answer == ("scheduler", "ok")


# --- entry_line and parse_entries agree ----------------------------------------------------

# What `api-key new --name` accepts, less `#` and `;`: those break the entry in a file
# (see test_key_rotation.py, test_cli_entry_for_any_name_it_accepts_works_in_the_keys_file).
_CLIENT_CHARACTERS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",:#;")
_clients = st.text(_CLIENT_CHARACTERS, min_size=1, max_size=30).filter(
    lambda name: name == name.strip() and name != "",
)
_offsets = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
_expiries = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 2),
    max_value=datetime(9998, 12, 30),
    timezones=st.builds(timezone, _offsets),
)
_entries = st.lists(
    st.tuples(_clients, st.text(ALPHABET, min_size=1, max_size=80), _expiries),
    min_size=1,
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(entries=_entries, separator=st.sampled_from([",", "\n"]))
def test_entry_lines_parse_back_to_their_client_digest_and_expiry_to_the_second(
    entries: list[tuple[str, str, datetime | None]],
    separator: str,
) -> None:
    text = separator.join(entry_line(*entry) for entry in entries)

    parsed = parse_entries(text, separator=separator)

    # The entry keeps whole seconds: a key expires up to a second early, never late.
    assert parsed == [
        ApiKeyEntry(
            client=client,
            digest=hashlib.sha256(key.encode()).digest(),
            expires_at=expires_at and expires_at.astimezone(UTC).replace(microsecond=0),
        )
        for client, key, expires_at in entries
    ]
