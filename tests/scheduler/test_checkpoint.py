"""The checkpointed output: done ranges, and resuming after a kill at the worst moment."""

import os
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoints.scheduler import checkpoint
from entrypoints.scheduler.checkpoint import (
    CheckpointError,
    DigestOutput,
    DoneRanges,
    PassIdentity,
)

END = datetime(2026, 12, 4, tzinfo=UTC)
A_LINES = [b'{"userId":3}\n', b'{"userId":8}\n']
B_LINES = [b'{"userId":15}\n']


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def identity(out: Path, end: datetime = END, max_tasks: int = 5) -> PassIdentity:
    return PassIdentity(
        window_start=end - timedelta(hours=24),
        window_end=end,
        max_tasks=max_tasks,
        output=out,
    )


@st.composite
def spans(draw: st.DrawFn) -> tuple[int, int]:
    after = draw(st.integers(0, 60))
    return after, after + draw(st.integers(1, 15))


@settings(max_examples=300, deadline=None)
@given(st.lists(spans(), max_size=12), st.integers(0, 80))
def test_done_ranges_hold_exactly_the_ids_of_their_spans(
    added: list[tuple[int, int]],
    user_id: int,
) -> None:
    done = DoneRanges(added)

    merged = done.spans()

    assert (user_id in done) == any(after < user_id <= last for after, last in added)
    assert all(last < next_after for (_, last), (next_after, _) in pairwise(merged))
    assert done.prefix_end() == (merged[0][1] if merged and merged[0][0] == 0 else 0)


def test_ranges_of_neighbouring_batches_merge_into_one() -> None:
    done = DoneRanges()

    done.add(100, 200)
    done.add(0, 100)
    done.add(300, 400)

    assert done.spans() == [(0, 200), (300, 400)]
    assert done.prefix_end() == 200
    assert 250 not in done
    assert 0 not in done
    assert 400 in done


def test_commits_survive_into_the_next_run(tmp_path: Path) -> None:
    out, saved = tmp_path / "out.jsonl", tmp_path / "out.checkpoint"
    with DigestOutput.open(identity(out), saved) as first:
        first.commit([(0, 8)], A_LINES, users=2)

    with DigestOutput.open(identity(out), saved) as resumed:
        spans_done, users, messages = resumed.done.spans(), resumed.users, resumed.messages

    assert out.read_bytes() == b"".join(A_LINES)
    assert spans_done == [(0, 8)]
    assert (users, messages) == (2, 2)


@pytest.mark.parametrize("fatal_step", ["replace", "fsync_directory"])
def test_lines_written_but_not_recorded_are_dropped_on_resume(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fatal_step: str,
) -> None:
    out, saved = tmp_path / "out.jsonl", tmp_path / "out.checkpoint"
    with DigestOutput.open(identity(out), saved) as first:
        first.commit([(0, 8)], A_LINES, users=2)

        def kill(*args: object) -> None:
            raise Killed

        # Killed just before the new checkpoint replaces the old, or just after.
        if fatal_step == "replace":
            monkeypatch.setattr(os, "replace", kill)
        else:
            monkeypatch.setattr(checkpoint, "_fsync_directory", kill)
        with pytest.raises(Killed):
            first.commit([(8, 15)], B_LINES, users=1)
        monkeypatch.undo()
    written = out.read_bytes()

    with DigestOutput.open(identity(out), saved) as resumed:
        after_resume = out.read_bytes()
        recorded = resumed.done.spans()

    assert written == b"".join(A_LINES + B_LINES)
    if fatal_step == "replace":
        assert after_resume == b"".join(A_LINES)
        assert recorded == [(0, 8)]
    else:
        assert after_resume == b"".join(A_LINES + B_LINES)
        assert recorded == [(0, 15)]


def test_half_a_line_left_by_a_kill_is_dropped_on_resume(tmp_path: Path) -> None:
    out, saved = tmp_path / "out.jsonl", tmp_path / "out.checkpoint"
    with DigestOutput.open(identity(out), saved) as first:
        first.commit([(0, 8)], A_LINES, users=2)
    with out.open("ab") as torn:
        torn.write(B_LINES[0][:5])

    with DigestOutput.open(identity(out), saved) as resumed:
        resumed.commit([(8, 15)], B_LINES, users=1)

    assert out.read_bytes() == b"".join(A_LINES + B_LINES)


def test_batches_finishing_out_of_order_leave_the_gap_undone(tmp_path: Path) -> None:
    out, saved = tmp_path / "out.jsonl", tmp_path / "out.checkpoint"
    with DigestOutput.open(identity(out), saved) as first:
        first.commit([(8, 15)], B_LINES, users=1)

    with DigestOutput.open(identity(out), saved) as resumed:
        gap, done, start = 3 in resumed.done, 15 in resumed.done, resumed.done.prefix_end()

    assert (gap, done, start) == (False, True, 0)


def test_without_a_checkpoint_the_output_is_written_afresh(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"an older pass\n")

    with DigestOutput.open(identity(out), None) as output:
        output.commit([(0, 8)], A_LINES, users=2)

    assert out.read_bytes() == b"".join(A_LINES)
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize(
    "other",
    [
        identity(Path("out.jsonl"), end=END + timedelta(days=1)),
        identity(Path("out.jsonl"), max_tasks=10),
        identity(Path("elsewhere.jsonl")),
    ],
)
def test_a_checkpoint_of_another_pass_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    other: PassIdentity,
) -> None:
    monkeypatch.chdir(tmp_path)
    saved = tmp_path / "out.checkpoint"
    with DigestOutput.open(identity(Path("out.jsonl")), saved) as first:
        first.commit([(0, 8)], A_LINES, users=2)

    with pytest.raises(CheckpointError, match="is for another pass"):
        DigestOutput.open(other, saved)

    assert (tmp_path / "out.jsonl").read_bytes() == b"".join(A_LINES)


def test_an_output_shorter_than_its_checkpoint_is_refused(tmp_path: Path) -> None:
    out, saved = tmp_path / "out.jsonl", tmp_path / "out.checkpoint"
    with DigestOutput.open(identity(out), saved) as first:
        first.commit([(0, 8)], A_LINES, users=2)
    os.truncate(out, 3)

    with pytest.raises(CheckpointError, match="shorter"):
        DigestOutput.open(identity(out), saved)


def test_a_checkpoint_without_its_output_is_refused(tmp_path: Path) -> None:
    out, saved = tmp_path / "out.jsonl", tmp_path / "out.checkpoint"
    with DigestOutput.open(identity(out), saved) as first:
        first.commit([(0, 8)], A_LINES, users=2)
    out.unlink()

    with pytest.raises(CheckpointError, match="missing"):
        DigestOutput.open(identity(out), saved)


def test_a_second_pass_on_the_same_output_is_refused_while_the_first_runs(
    tmp_path: Path,
) -> None:
    out, saved = tmp_path / "out.jsonl", tmp_path / "out.checkpoint"
    with DigestOutput.open(identity(out), saved) as first:
        first.commit([(0, 8)], A_LINES, users=2)

        with pytest.raises(CheckpointError, match="another pass is writing"):
            DigestOutput.open(identity(out), None)

        first.commit([(8, 15)], B_LINES, users=1)

    assert out.read_bytes() == b"".join(A_LINES + B_LINES)


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path: Path) -> None:
    out, saved = tmp_path / "out.jsonl", tmp_path / "out.checkpoint"
    saved.write_text("users: 12\n")
    out.write_bytes(b"".join(A_LINES))

    with pytest.raises(CheckpointError, match="not a checkpoint"):
        DigestOutput.open(identity(out), saved)

    assert out.read_bytes() == b"".join(A_LINES)
