"""The output of a pass and the checkpoint that says how much of it is final.

Consumers finish batches in any order, so progress is not a single cursor: the
checkpoint keeps the ranges of the ID walk whose batches are done, and the byte length
of the output file that holds exactly their messages.

Why a pass killed at any moment loses and duplicates nothing. Commits are serialised
(one writer per pass, and a lock on the output keeps a second pass out), and each one
(1) writes the lines of its batches at the recorded length and fsyncs the output, then
(2) writes a new checkpoint beside the old one, fsyncs it and renames it over the old
one, which replaces the file in one step. Invariant: the first `outputBytes` bytes of
the output are the messages of the batches in `done`, each once. It holds for an empty
checkpoint, and a commit keeps it: until the rename the old checkpoint stands, and
whatever step (1) wrote lies past its length; after the rename the new length covers
exactly the old messages and the new batches', already on disk. Resuming truncates the
output to `outputBytes`, dropping lines (even half a line) of batches that were written
but not recorded, and the walk skips every ID inside a done range, so each done user
keeps its one message and every other user is asked for again.
"""

import contextlib
import fcntl
import os
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Annotated, BinaryIO

import msgspec
from msgspec import Meta, Struct

FORMAT = 1

UtcTime = Annotated[datetime, Meta(tz=True)]


class CheckpointError(Exception):
    """The checkpoint cannot be used for this pass; the message says why and what to do."""


class DoneRanges:
    """Half-open ranges (after, last] of user IDs whose batches are done, kept merged.

    A batch covers every ID of the walk between the previous batch's last ID and its
    own, so ranges of neighbouring batches touch and merge into one.
    """

    def __init__(self, spans: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for after, last in spans:
            self.add(after, last)

    def add(self, after: int, last: int) -> None:
        if after >= last:
            raise ValueError(f"an empty range ({after}, {last}]")
        # Spans that overlap or touch (after, last] sit together in the sorted lists.
        low = bisect_left(self._ends, after)
        high = bisect_right(self._starts, last)
        if low < high:
            after = min(after, self._starts[low])
            last = max(last, self._ends[high - 1])
        self._starts[low:high] = [after]
        self._ends[low:high] = [last]

    def __contains__(self, user_id: int) -> bool:
        index = bisect_left(self._ends, user_id)
        return index < len(self._ends) and self._starts[index] < user_id

    def prefix_end(self) -> int:
        """Where a walk may start: the end of the range that begins at 0, or 0."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def spans(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))


@dataclass(frozen=True, slots=True)
class PassIdentity:
    """What a resumed pass must share with the one that wrote the checkpoint."""

    window_start: datetime
    window_end: datetime
    max_tasks: int
    output: Path


class _Saved(Struct, rename="camel", frozen=True, forbid_unknown_fields=True):
    format: int
    window_start: UtcTime
    window_end: UtcTime
    max_tasks: int
    output: str
    output_bytes: Annotated[int, Meta(ge=0)]
    done: list[tuple[int, int]]
    users: int
    messages: int


_decoder = msgspec.json.Decoder(_Saved)
_encoder = msgspec.json.Encoder()


class DigestOutput:
    """The JSON-lines output of a pass, resumed from its checkpoint when there is one.

    Without a checkpoint the output is simply written afresh and nothing is fsynced.
    """

    def __init__(
        self,
        file: BinaryIO,
        identity: PassIdentity,
        checkpoint: Path | None,
        saved: _Saved | None,
    ) -> None:
        self._file = file
        self._identity = identity
        self._checkpoint = checkpoint
        self.length = saved.output_bytes if saved else 0
        self.done = DoneRanges(saved.done if saved else ())
        self.users = saved.users if saved else 0
        self.messages = saved.messages if saved else 0

    @classmethod
    def open(cls, identity: PassIdentity, checkpoint: Path | None) -> "DigestOutput":
        """The output, locked against a second pass, cut back to what the checkpoint holds."""
        identity = PassIdentity(
            window_start=identity.window_start,
            window_end=identity.window_end,
            max_tasks=identity.max_tasks,
            output=identity.output.resolve(),
        )
        file = _open_locked(identity.output)
        try:
            saved = _load(checkpoint, identity) if checkpoint is not None else None
            if saved is None:
                file.truncate(0)
                output = cls(file, identity, checkpoint, None)
                if checkpoint is not None:
                    output._save()
                return output

            if os.fstat(file.fileno()).st_size < saved.output_bytes:
                raise CheckpointError(
                    f"{identity.output} is missing or shorter than {checkpoint} says; "
                    "remove the checkpoint to start the pass afresh",
                )
            file.truncate(saved.output_bytes)
            return cls(file, identity, checkpoint, saved)
        except BaseException:
            file.close()
            raise

    def __enter__(self) -> "DigestOutput":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def commit(
        self,
        ranges: Sequence[tuple[int, int]],
        lines: Sequence[bytes],
        users: int,
    ) -> None:
        """Add done batches, each covering (after, last], with their lines; see the module
        docstring for the order of the steps."""
        data = b"".join(lines)
        self._file.seek(self.length)
        self._file.write(data)
        self._file.flush()
        if self._checkpoint is not None:
            os.fsync(self._file.fileno())

        self.length += len(data)
        for after, last in ranges:
            self.done.add(after, last)
        self.users += users
        self.messages += len(lines)
        if self._checkpoint is not None:
            self._save()

    def _save(self) -> None:
        assert self._checkpoint is not None
        saved = _Saved(
            format=FORMAT,
            window_start=self._identity.window_start,
            window_end=self._identity.window_end,
            max_tasks=self._identity.max_tasks,
            output=str(self._identity.output),
            output_bytes=self.length,
            done=self.done.spans(),
            users=self.users,
            messages=self.messages,
        )
        temporary = self._checkpoint.with_name(self._checkpoint.name + ".tmp")
        with temporary.open("wb") as file:
            file.write(_encoder.encode(saved))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self._checkpoint)
        _fsync_directory(self._checkpoint.parent)


def _load(checkpoint: Path, identity: PassIdentity) -> _Saved | None:
    try:
        raw = checkpoint.read_bytes()
    except FileNotFoundError:
        return None
    try:
        saved = _decoder.decode(raw)
    except msgspec.DecodeError as err:
        raise CheckpointError(f"{checkpoint} is not a checkpoint of this tool: {err}") from None
    if saved.format != FORMAT:
        raise CheckpointError(f"{checkpoint} has format {saved.format}, expected {FORMAT}")

    theirs = PassIdentity(
        window_start=saved.window_start,
        window_end=saved.window_end,
        max_tasks=saved.max_tasks,
        output=Path(saved.output),
    )
    if theirs != identity:
        raise CheckpointError(
            f"{checkpoint} is for another pass (window ending {saved.window_end.isoformat()}, "
            f"max tasks {saved.max_tasks}, output {saved.output}); run that pass again "
            "with the same options to finish it, or remove the checkpoint to start afresh",
        )
    return saved


def _open_locked(path: Path) -> BinaryIO:
    """Open (or create) the output without truncating it, and hold it exclusively.

    Two passes writing one output would interleave their lines and checkpoints. The lock
    is the kernel's, so it goes with the process, however that ends.
    """
    file = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+b")
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise CheckpointError(f"another pass is writing {path} right now") from None
    return file


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
