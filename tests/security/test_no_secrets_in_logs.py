"""No key and no digest of one reaches a log record, however the record is rendered.

A representative stretch of traffic runs through the real app: good keys, every kind of
bad key, throttling, a rotation through the keys file and a malformed rewrite of it.
Every logger is captured at DEBUG; each record is then searched as it is (message, args,
every attribute) and as the service writes it (JSON and key=value).
"""

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from entrypoints.api_keys import ApiKeyEntry, digest_of, entry_line, new_api_key
from entrypoints.logs import JsonFormatter, KeyValueFormatter
from tests.data import Seeder, Task, User, at
from tests.http.test_errors_and_methods import REPORTS, USER_IDS, exchange, serving
from tests.security.test_api_key_format import TELLING_LENGTH
from tests.security.test_key_rotation import (
    answers,
    seconds_until,
    status_for,
    warned_of_the_file,
    write_atomically,
    write_in_place,
)

# Low enough that the traffic below is throttled for a while.
FAILURES_PER_MINUTE = 25


@dataclass
class Keys:
    """Every key the traffic uses, good or bad, and so every secret to look for."""

    configured: str = field(default_factory=new_api_key)
    old: str = field(default_factory=new_api_key)
    new: str = field(default_factory=new_api_key)
    expired: str = field(default_factory=new_api_key)
    unknown: str = field(default_factory=new_api_key)
    pasted: str = field(default_factory=new_api_key)

    @property
    def wrong_checksum(self) -> str:
        return self.configured[:-1] + ("a" if self.configured[-1] != "a" else "b")

    def secrets(self) -> list[str]:
        keys = [*vars(self).values(), self.wrong_checksum]
        return keys + [hashlib.sha256(key.encode()).hexdigest() for key in keys]


def renderings(record: logging.LogRecord) -> list[str]:
    """The record as stored, attribute by attribute, and as the service's formatters write it."""
    texts = [record.getMessage(), repr(record.args), repr(vars(record))]
    texts += [str(value) for value in vars(record).values()]
    texts += [JsonFormatter().format(record), KeyValueFormatter().format(record)]
    return texts


def leaked(texts: list[str], secrets: list[str]) -> list[str]:
    """The telling pieces of `secrets` found anywhere in `texts`, whatever the case."""
    haystack = "\n".join(texts).lower()
    return [
        secret[start : start + TELLING_LENGTH]
        for secret in secrets
        for start in range(len(secret) - TELLING_LENGTH + 1)
        if secret[start : start + TELLING_LENGTH].lower() in haystack
    ]


async def bad_traffic(client: AsyncTestClient[Litestar], keys: Keys) -> None:
    """Every kind of refused request, sent as a server would pass it to the app."""
    for headers in (
        [],
        [(b"x-api-key", b"")],
        [(b"x-api-key", b"not a key at all")],
        [(b"x-api-key", keys.configured.encode()[:-1] + b"\xe9")],
        [(b"x-api-key", keys.wrong_checksum.encode())],
        [(b"x-api-key", keys.unknown.encode())],
        [(b"x-api-key", keys.expired.encode())],
        [(b"x-api-key", keys.configured.encode())] * 2,
        [(b"authorization", b"Bearer " + keys.configured.encode())],
    ):
        await exchange(client, "GET", USER_IDS, headers)
    await exchange(client, "GET", f"{USER_IDS}?api_key={keys.configured}")
    await exchange(client, "POST", f"{REPORTS}?X-API-Key={keys.configured}")


async def good_traffic(client: AsyncTestClient[Litestar], key: str) -> None:
    """Requests with a valid key that succeed, and some that fail for other reasons."""
    auth = {"X-API-Key": key}
    await client.get(USER_IDS, headers=auth)
    await client.post(REPORTS, json={"userIds": [1, 2]}, headers=auth)
    await client.get(f"{USER_IDS}?limit=0", headers=auth)
    await client.get(USER_IDS + "/nothing-here", headers=auth)
    await client.delete(REPORTS, headers=auth)


async def test_no_log_record_of_good_bad_and_rotated_keys_holds_a_key_or_digest(
    seeder: Seeder,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await seeder.users([User(1, "ann@example.com")])
    await seeder.tasks([Task(1, 1, "Renew passport", at("2026-12-01T00:00:00Z"))])
    keys = Keys()
    keys_file = tmp_path / "api-keys"
    last_year = datetime.now(UTC) - timedelta(days=365)
    write_atomically(
        keys_file,
        entry_line("scheduler", keys.old),
        entry_line("scheduler", keys.expired, last_year),
    )
    configured = ApiKeyEntry("tests", digest_of(keys.configured))

    async with serving(
        database_url,
        api_keys=(configured,),
        api_keys_file=keys_file,
        auth_failures_per_minute=FAILURES_PER_MINUTE,
    ) as client:
        await good_traffic(client, keys.configured)
        await good_traffic(client, keys.old)
        # The last round is throttled. exchange() speaks as 127.0.0.1 and the test client
        # as "testclient", so the requests below are not.
        for _ in range(3):
            await bad_traffic(client, keys)
        # Roll: the new key in, the old one out, in one rewrite.
        write_atomically(keys_file, entry_line("scheduler", keys.new))
        rolled = await seconds_until(lambda: answers(client, keys.old, 401))
        await good_traffic(client, keys.new)
        # The operator pastes a key where its digest belongs.
        write_in_place(keys_file, f"scheduler:{keys.pasted}", entry_line("scheduler", keys.new))
        refused_file = await seconds_until(lambda: warned_of_the_file(client, caplog, keys.new))
        await status_for(client, keys.pasted)

    records = list(caplog.records)
    assert rolled is not None
    assert refused_file is not None
    reasons = {r.__dict__.get("reason") for r in records}
    assert {"missing", "malformed", "bad-checksum", "unknown", "expired", "repeated"} <= reasons
    clients = {r.__dict__.get("client") for r in records if r.name == "task_tracker.access"}
    assert {"tests", "scheduler", "-"} <= clients
    assert {r.__dict__.get("status") for r in records} >= {200, 400, 401, 404, 405, 429}
    texts = [text for record in records for text in renderings(record)]
    assert leaked(texts, keys.secrets()) == []


async def test_metrics_after_good_and_bad_keys_hold_no_key_or_digest(
    seeder: Seeder,
    database_url: str,
) -> None:
    keys = Keys()
    configured = ApiKeyEntry("tests", digest_of(keys.configured))

    async with serving(
        database_url,
        api_keys=(configured,),
        auth_failures_per_minute=FAILURES_PER_MINUTE,
    ) as client:
        await good_traffic(client, keys.configured)
        await bad_traffic(client, keys)
        exposition = (await client.get("/metrics")).text

    assert "task_tracker_auth_failures_total" in exposition
    assert leaked([exposition], keys.secrets()) == []
