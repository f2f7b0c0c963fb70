"""Digest messages: what a user's report tells them, as one JSON line for the e-mail sender."""

import hashlib
import unicodedata
from datetime import UTC, datetime

import msgspec
from msgspec import Struct

from .client import UserReport, Window, rfc3339

UNFINISHED_TITLES = 5

# Bidirectional classes that can reorder the text around a title: right-to-left letters
# and the explicit embedding, override and isolate controls.
_BIDI_SENSITIVE = frozenset(
    {"R", "AL", "LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"},
)
_FIRST_STRONG_ISOLATE = "\u2068"
_POP_DIRECTIONAL_ISOLATE = "\u2069"


class DigestMessage(Struct, rename="camel", frozen=True, forbid_unknown_fields=True):
    recipient: str
    subject: str
    body: str
    user_id: int
    window_end: datetime
    idempotency_key: str


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DigestMessage)


def compose(report: UserReport, window: Window) -> DigestMessage | None:
    """The user's digest, or None when they have nothing unfinished and completed nothing."""
    unfinished, completed = report.unfinished.count, report.completed.count
    if unfinished == 0 and completed == 0:
        return None

    parts = []
    if unfinished:
        titles = [task.title for task in report.unfinished.tasks[:UNFINISHED_TITLES]]
        heading = f"You have {unfinished} unfinished {_tasks(unfinished)}"
        parts.append(_section(heading, unfinished, titles))
    if completed:
        titles = [task.title for task in report.completed.tasks]
        heading = f"Today you completed {completed} {_tasks(completed)}"
        parts.append(_section(heading, completed, titles))

    return DigestMessage(
        recipient=report.email,
        subject=_subject(unfinished, completed),
        body="\n\n".join(parts) + "\n",
        user_id=report.user_id,
        window_end=window.end.astimezone(UTC),
        idempotency_key=idempotency_key(report.user_id, window),
    )


def idempotency_key(user_id: int, window: Window) -> str:
    """The same for every message to this user about this window, and for nothing else."""
    text = f"task-tracker-digest:v1:{user_id}:{rfc3339(window.start)}:{rfc3339(window.end)}"
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def encode_line(message: DigestMessage) -> bytes:
    # JSON escapes line feeds inside strings, so a message is always exactly one line.
    return _encoder.encode(message) + b"\n"


def decode_line(line: bytes) -> DigestMessage:
    return _decoder.decode(line)


def _subject(unfinished: int, completed: int) -> str:
    if unfinished and completed:
        return (
            f"You have {unfinished} unfinished {_tasks(unfinished)} and completed {completed} today"
        )
    if unfinished:
        return f"You have {unfinished} unfinished {_tasks(unfinished)}"
    return f"Today you completed {completed} {_tasks(completed)}"


def _tasks(count: int) -> str:
    return "task" if count == 1 else "tasks"


def _section(heading: str, count: int, titles: list[str]) -> str:
    if not titles:
        return heading + "."
    lines = [heading + ":", *(f"- {_display(title)}" for title in titles)]
    if count > len(titles):
        lines.append(f"  and {count - len(titles)} more")
    return "\n".join(lines)


def _display(title: str) -> str:
    """A title as one list item: as stored, but for what would break the list.

    Line breaks and other control characters become spaces and the ends are trimmed, so
    a title stays on its line; a title with right-to-left text or bidi controls goes in
    an isolate, so it cannot reorder the bullet or the lines around it.
    """
    flat = "".join(
        " " if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in title
    ).strip()
    if not flat:
        return "(untitled)"
    if any(unicodedata.bidirectional(char) in _BIDI_SENSITIVE for char in flat):
        return _FIRST_STRONG_ISOLATE + flat + _POP_DIRECTIONAL_ISOLATE
    return flat
