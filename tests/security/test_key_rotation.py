"""Rotating keys as docs/operations.md tells an operator to, through the real app.

The app reads its keys from a file (TASK_TRACKER_API_KEYS_FILE) and notices changes while
it runs; the key the CLI mints is the one a client then sends.
"""

import asyncio
import hashlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from entrypoints import cli
from entrypoints.api_keys import (
    ApiKeyConfigError,
    ApiKeyEntry,
    ApiKeySource,
    entry_line,
    key_id_of,
    new_api_key,
    parse_entries,
)
from entrypoints.logs import KeyValueFormatter
from tests.conftest import PROJECT_ROOT
from tests.data import Seeder
from tests.http.test_errors_and_methods import USER_IDS, serving
from tests.security.test_api_key_format import KEY_SHAPE

# docs/operations.md: "Within a second the old key is refused"; the file is looked at once
# a second (ApiKeySource.RECHECK_S), so a change shows within two at the latest.
TAKES_EFFECT_WITHIN_S = 2.0
# Long enough to tell "late" from "never" when the check above fails.
GIVE_UP_AFTER_S = 5.0
AUTH_LOGGER = "entrypoints.http.authentication"
KEYS_LOGGER = "entrypoints.api_keys"


def write_atomically(path: Path, *lines: str) -> None:
    """Replace the file as a mounted secret or an editor does: a new file renamed over it."""
    draft = path.with_name(path.name + ".draft")
    write_in_place(draft, *lines)
    os.replace(draft, path)


def write_in_place(path: Path, *lines: str) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


async def seconds_until(
    check: Callable[[], Awaitable[bool]],
    *,
    limit_s: float = GIVE_UP_AFTER_S,
) -> float | None:
    """How long until `check` came true, or None if it did not within `limit_s`."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return None


def reading(
    keys_file: Path, database_url: str
) -> AbstractAsyncContextManager[AsyncTestClient[Litestar]]:
    """The real app with no keys of its own, only those of `keys_file`."""
    return serving(database_url, api_keys=(), api_keys_file=keys_file)


async def status_for(client: AsyncTestClient[Litestar], key: str) -> int:
    response = await client.get(USER_IDS, headers={"X-API-Key": key})
    return response.status_code


async def answers(client: AsyncTestClient[Litestar], key: str, status: int) -> bool:
    return await status_for(client, key) == status


async def warned_of_the_file(
    client: AsyncTestClient[Litestar],
    caplog: pytest.LogCaptureFixture,
    key: str,
) -> bool:
    # A request makes the app look at the file; the warning follows if it does not parse.
    await status_for(client, key)
    return any(r.name == KEYS_LOGGER and r.levelno == logging.WARNING for r in caplog.records)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "api-keys"


# --- the running app follows the file -------------------------------------------------------


async def test_two_keys_of_one_client_in_the_file_both_work(
    seeder: Seeder,
    database_url: str,
    keys_file: Path,
) -> None:
    old_key, new_key = new_api_key(), new_api_key()
    write_atomically(keys_file, entry_line("scheduler", old_key), entry_line("scheduler", new_key))

    async with reading(keys_file, database_url) as client:
        statuses = [await status_for(client, old_key), await status_for(client, new_key)]

    assert statuses == [200, 200]


async def test_adding_a_line_accepts_its_key_within_seconds_without_restart(
    seeder: Seeder,
    database_url: str,
    keys_file: Path,
) -> None:
    old_key, new_key = new_api_key(), new_api_key()
    lines = [entry_line("scheduler", old_key)]
    write_atomically(keys_file, *lines)

    async with reading(keys_file, database_url) as client:
        before = await status_for(client, new_key)
        write_atomically(keys_file, *lines, entry_line("scheduler", new_key))
        accepted_after = await seconds_until(lambda: answers(client, new_key, 200))
        old_still = await status_for(client, old_key)

    assert before == 401
    assert accepted_after is not None, "the added key was never accepted"
    assert accepted_after < TAKES_EFFECT_WITHIN_S
    assert old_still == 200


async def test_removing_a_line_revokes_its_key_within_seconds_and_keeps_the_other(
    seeder: Seeder,
    database_url: str,
    keys_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=KEYS_LOGGER)
    old_key, new_key = new_api_key(), new_api_key()
    write_atomically(keys_file, entry_line("scheduler", old_key), entry_line("scheduler", new_key))

    async with reading(keys_file, database_url) as client:
        before = [await status_for(client, old_key), await status_for(client, new_key)]
        write_atomically(keys_file, entry_line("scheduler", new_key))
        revoked_after = await seconds_until(lambda: answers(client, old_key, 401))
        new_still = await status_for(client, new_key)

    assert before == [200, 200]
    assert revoked_after is not None, "the removed key was never refused"
    assert revoked_after < TAKES_EFFECT_WITHIN_S
    assert new_still == 200
    assert "api key file reloaded entries=1" in caplog.messages


async def test_malformed_rewrite_keeps_the_previous_keys_and_logs_why(
    seeder: Seeder,
    database_url: str,
    keys_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=KEYS_LOGGER)
    kept_key, dropped_key, pasted_key = new_api_key(), new_api_key(), new_api_key()
    write_atomically(
        keys_file,
        entry_line("scheduler", kept_key),
        entry_line("scheduler", dropped_key),
    )

    async with reading(keys_file, database_url) as client:
        # The operator pastes a key where its digest belongs, and drops a line as well.
        write_in_place(keys_file, entry_line("scheduler", kept_key), f"scheduler:{pasted_key}")
        warned_after = await seconds_until(lambda: warned_of_the_file(client, caplog, kept_key))
        statuses = [await status_for(client, key) for key in (kept_key, dropped_key, pasted_key)]
        # Once the file is right again, it is followed again.
        write_atomically(keys_file, entry_line("scheduler", kept_key))
        revoked_after = await seconds_until(lambda: answers(client, dropped_key, 401))

    assert warned_after is not None, "no warning about the malformed file"
    [warning] = [
        r for r in caplog.records if r.name == KEYS_LOGGER and r.levelno == logging.WARNING
    ]
    message = warning.getMessage()
    assert "keeping the previous keys" in message
    assert "line 2 (scheduler): the digest must be 64 hex digits" in message
    assert pasted_key not in message
    assert statuses == [200, 200, 401]
    assert revoked_after is not None, "the file was not followed after it was fixed"


async def test_expired_key_gets_the_same_401_as_an_unknown_key_and_the_log_says_expired(
    seeder: Seeder,
    database_url: str,
    keys_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=AUTH_LOGGER)
    expired_key, unknown_key = new_api_key(), new_api_key()
    yesterday = datetime.now(UTC) - timedelta(days=1)
    write_atomically(keys_file, entry_line("scheduler", expired_key, yesterday))

    async with reading(keys_file, database_url) as client:
        expired = await client.get(USER_IDS, headers={"X-API-Key": expired_key})
        unknown = await client.get(USER_IDS, headers={"X-API-Key": unknown_key})

    assert expired.status_code == unknown.status_code == 401
    assert expired.content == unknown.content
    ignored = {"x-request-id"}
    assert {k: v for k, v in expired.headers.items() if k not in ignored} == {
        k: v for k, v in unknown.headers.items() if k not in ignored
    }
    failures = [r for r in caplog.records if r.name == AUTH_LOGGER]
    reasons = [(r.__dict__["reason"], r.__dict__["key_id"]) for r in failures]
    assert reasons == [
        ("expired", key_id_of(expired_key.encode())),
        ("unknown", key_id_of(unknown_key.encode())),
    ]
    line = KeyValueFormatter().format(failures[0])
    assert f"reason=expired key_id={key_id_of(expired_key.encode())}" in line
    assert expired_key not in line


async def test_key_with_an_expiry_still_ahead_works_and_names_its_client(
    seeder: Seeder,
    database_url: str,
    keys_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="task_tracker.access")
    key = new_api_key()
    in_90_days = datetime.now(UTC) + timedelta(days=90)
    write_atomically(keys_file, entry_line("scheduler", key, in_90_days))

    async with reading(keys_file, database_url) as client:
        status = await status_for(client, key)

    assert status == 200
    assert [r.__dict__["client"] for r in caplog.records if r.name == "task_tracker.access"] == [
        "scheduler",
    ]


# --- when the file is looked at --------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def accepts(source: ApiKeySource, key: str) -> bool:
    client, _ = source.current().client_for(key.encode(), datetime.now(UTC))
    return client is not None


def test_file_is_looked_at_again_only_after_a_second(keys_file: Path) -> None:
    old_key, new_key = new_api_key(), new_api_key()
    write_atomically(keys_file, entry_line("scheduler", old_key))
    clock = FakeClock()
    source = ApiKeySource((), keys_file, clock=clock)
    write_atomically(keys_file, entry_line("scheduler", new_key))

    clock.now = 0.9
    within_the_second = (accepts(source, old_key), accepts(source, new_key))
    clock.now = 1.0
    after_it = (accepts(source, old_key), accepts(source, new_key))

    assert within_the_second == (True, False)
    assert after_it == (False, True)


def test_reload_request_as_on_sighup_reads_the_file_at_once(keys_file: Path) -> None:
    old_key, new_key = new_api_key(), new_api_key()
    write_atomically(keys_file, entry_line("scheduler", old_key))
    clock = FakeClock()
    source = ApiKeySource((), keys_file, clock=clock)
    write_atomically(keys_file, entry_line("scheduler", new_key))

    source.request_reload()

    assert (accepts(source, old_key), accepts(source, new_key)) == (False, True)


def test_keys_from_the_environment_stay_whatever_the_file_says(keys_file: Path) -> None:
    fixed_key, file_key = new_api_key(), new_api_key()
    write_atomically(keys_file, entry_line("scheduler", file_key))
    fixed = ApiKeyEntry("reporter", hashlib.sha256(fixed_key.encode()).digest())
    source = ApiKeySource([fixed], keys_file, clock=FakeClock())

    write_atomically(keys_file, "# every key revoked")
    source.request_reload()

    assert (accepts(source, fixed_key), accepts(source, file_key)) == (True, False)


def test_app_refuses_to_start_on_a_malformed_keys_file(keys_file: Path) -> None:
    key = new_api_key()
    write_in_place(keys_file, f"scheduler:{key}")

    with pytest.raises(ApiKeyConfigError) as refused:
        ApiKeySource((), keys_file)

    assert "line 1 (scheduler): the digest must be 64 hex digits" in str(refused.value)
    assert key not in str(refused.value)


# --- minting with the CLI --------------------------------------------------------------------


def _environment_without_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TASK_TRACKER_")}


def test_cli_mints_a_key_and_an_entry_holding_its_sha256_and_a_90_day_expiry() -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv runs this suite, so it is on PATH"
    command = ["api-key", "new", "--name", "scheduler", "--expires-in", "90d"]
    before = datetime.now(UTC)

    # --no-sync: the suite's environment is already in place; never change it under it.
    done = subprocess.run(
        [uv, "run", "--no-sync", "task-tracker", *command],
        cwd=PROJECT_ROOT,
        env=_environment_without_settings(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    after = datetime.now(UTC)
    assert done.returncode == 0, done.stderr
    printed = [line.strip() for line in done.stdout.splitlines()]
    [key] = [line for line in printed if KEY_SHAPE.fullmatch(line)]
    [entry_text] = [line for line in printed if line.startswith("scheduler:")]
    [entry] = parse_entries(entry_text)
    assert entry.client == "scheduler"
    assert entry.digest == hashlib.sha256(key.encode()).digest()
    assert entry.expires_at is not None
    # The entry keeps whole seconds, so it may read up to a second before `before` + 90 d.
    assert before + timedelta(days=90, seconds=-1) <= entry.expires_at <= after + timedelta(days=90)
    assert done.stdout.count(key) == 1
    assert key not in done.stderr


@pytest.mark.parametrize("name", ["ops#1", "night;shift"])
def test_cli_entry_for_any_name_it_accepts_works_in_the_keys_file(
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for variable in [k for k in os.environ if k.startswith("TASK_TRACKER_")]:
        monkeypatch.delenv(variable)
    # The CLI would point every logger of this test process at its own handler.
    monkeypatch.setattr(cli, "configure_logging", lambda level, log_format: None)

    code = cli.main(["api-key", "new", "--name", name])

    printed = capsys.readouterr()
    if code != 0:
        # Refusing the name outright is a fix as good as accepting it in the file.
        assert code == 2
        assert "--name" in printed.err
        return
    entry_text = printed.out.splitlines()[-1].strip()
    assert [entry.client for entry in parse_entries(entry_text, separator="\n")] == [name]
