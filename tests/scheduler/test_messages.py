"""Digest messages composed from reports: wording, counts, odd titles and the JSON line."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoints.scheduler.client import (
    CompletedTask,
    CompletedTasks,
    UnfinishedTask,
    UnfinishedTasks,
    UserReport,
    Window,
)
from entrypoints.scheduler.messages import compose, decode_line, encode_line, idempotency_key

END = datetime(2026, 12, 4, tzinfo=UTC)
WINDOW = Window(start=END - timedelta(hours=24), end=END)
DONE_AT = datetime(2026, 12, 3, 18, 20, tzinfo=UTC)
FSI, PDI = "\u2068", "\u2069"


def report(
    unfinished: list[str] = [],  # noqa: B006 never mutated
    completed: list[str] = [],  # noqa: B006 never mutated
    *,
    unfinished_count: int | None = None,
    completed_count: int | None = None,
    user_id: int = 7,
) -> UserReport:
    """A report listing these titles; the counts default to the number of titles."""
    return UserReport(
        user_id=user_id,
        email="ann@example.com",
        unfinished=UnfinishedTasks(
            count=len(unfinished) if unfinished_count is None else unfinished_count,
            tasks=[UnfinishedTask(id=100 + i, title=t) for i, t in enumerate(unfinished)],
        ),
        completed=CompletedTasks(
            count=len(completed) if completed_count is None else completed_count,
            tasks=[
                CompletedTask(id=200 + i, title=t, completed_at=DONE_AT)
                for i, t in enumerate(completed)
            ],
        ),
    )


def body_of(user_report: UserReport) -> str:
    message = compose(user_report, WINDOW)
    assert message is not None
    return message.body


def test_user_with_nothing_unfinished_and_nothing_completed_gets_no_message() -> None:
    quiet = report()

    message = compose(quiet, WINDOW)

    assert message is None


def test_one_unfinished_task_is_named_in_the_singular() -> None:
    one = report(["Renew passport"])

    message = compose(one, WINDOW)

    assert message is not None
    assert message.subject == "You have 1 unfinished task"
    assert message.body == "You have 1 unfinished task:\n- Renew passport\n"


def test_unfinished_tasks_show_five_titles_and_say_how_many_more() -> None:
    # Seven listed (the scheduler may ask for more than five) out of nine.
    many = report([f"Task {n}" for n in range(1, 8)], unfinished_count=9)

    message = compose(many, WINDOW)

    assert message is not None
    assert message.subject == "You have 9 unfinished tasks"
    assert message.body == (
        "You have 9 unfinished tasks:\n"
        "- Task 1\n- Task 2\n- Task 3\n- Task 4\n- Task 5\n"
        "  and 4 more\n"
    )


def test_one_completed_task_is_named_in_the_singular() -> None:
    one = report(completed=["Pay rent"])

    message = compose(one, WINDOW)

    assert message is not None
    assert message.subject == "Today you completed 1 task"
    assert message.body == "Today you completed 1 task:\n- Pay rent\n"


def test_completed_tasks_show_every_listed_title_and_say_how_many_more() -> None:
    titles = [f"Done {n}" for n in range(1, 8)]
    busy = report(completed=titles, completed_count=10)

    body = body_of(busy)

    assert body == (
        "Today you completed 10 tasks:\n"
        + "".join(f"- {title}\n" for title in titles)
        + "  and 3 more\n"
    )


def test_both_parts_go_into_one_message_unfinished_first() -> None:
    both = report(["Renew passport", "Book dentist"], ["Pay rent"])

    message = compose(both, WINDOW)

    assert message is not None
    assert message.subject == "You have 2 unfinished tasks and completed 1 today"
    assert message.body == (
        "You have 2 unfinished tasks:\n- Renew passport\n- Book dentist\n"
        "\n"
        "Today you completed 1 task:\n- Pay rent\n"
    )


def test_counts_without_titles_are_still_stated() -> None:
    # What a report asked for with maxTasks 0 looks like.
    bare = report(unfinished_count=3, completed_count=1)

    body = body_of(bare)

    assert body == "You have 3 unfinished tasks.\n\nToday you completed 1 task.\n"


@pytest.mark.parametrize(
    ("title", "shown"),
    [
        ("Buy\nmilk", "Buy milk"),
        ("Buy\r\nmilk", "Buy  milk"),
        ("Buy\u2028milk\u2029now", "Buy milk now"),
        ("tab\there", "tab here"),
        ("Ship it 🚀 👩‍💻", "Ship it 🚀 👩‍💻"),
        ('Say "hi" to O\'Neil \\o/', 'Say "hi" to O\'Neil \\o/'),
        ("<b>not bold</b> & co", "<b>not bold</b> & co"),
        ("  padded  ", "padded"),
        ("\n", "(untitled)"),
        ("", "(untitled)"),
        ("לקנות חלב", f"{FSI}לקנות חלב{PDI}"),
        ("اتصل بأمي 2", f"{FSI}اتصل بأمي 2{PDI}"),
        ("abc\u202edef", f"{FSI}abc\u202edef{PDI}"),
        ("Réserver le café ☕", "Réserver le café ☕"),
    ],
)
def test_odd_titles_stay_one_list_item_of_their_own(title: str, shown: str) -> None:
    odd = report([title])

    body = body_of(odd)

    assert body == f"You have 1 unfinished task:\n- {shown}\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=5))
def test_any_title_takes_exactly_one_line(titles: list[str]) -> None:
    odd = report(completed=titles)

    lines = body_of(odd).splitlines()

    assert len(lines) == 1 + len(titles)
    assert all(line.startswith("- ") for line in lines[1:])


def test_a_message_is_one_json_line_with_the_contract_fields() -> None:
    message = compose(report(["Renew passport"]), WINDOW)
    assert message is not None

    line = encode_line(message)

    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert list(msgspec.json.decode(line)) == [
        "recipient",
        "subject",
        "body",
        "userId",
        "windowEnd",
        "idempotencyKey",
    ]
    assert msgspec.json.decode(line)["windowEnd"] == "2026-12-04T00:00:00Z"
    assert msgspec.json.decode(line)["recipient"] == "ann@example.com"


def test_odd_titles_survive_the_json_line_unchanged() -> None:
    titles = ['quote " backslash \\ ', "🎉 emoji", "שלום", "line\u2028sep", "nul\x00"]
    message = compose(report(completed=titles), WINDOW)
    assert message is not None

    line = encode_line(message)

    assert line.count(b"\n") == 1
    assert decode_line(line) == message


def test_idempotency_key_depends_only_on_the_user_and_the_window() -> None:
    today = compose(report(["Renew passport"]), WINDOW)
    retold = compose(report(["Other title"], ["Pay rent"], unfinished_count=4), WINDOW)
    other_user = compose(report(["Renew passport"], user_id=8), WINDOW)
    tomorrow = Window(start=WINDOW.end, end=WINDOW.end + timedelta(hours=24))
    next_day = compose(report(["Renew passport"]), tomorrow)

    keys = [m.idempotency_key for m in (today, retold, other_user, next_day) if m is not None]

    assert len(keys) == 4
    assert keys[0] == keys[1] == idempotency_key(7, WINDOW)
    assert len(set(keys)) == 3
    assert all(len(key) == 64 and set(key) <= set("0123456789abcdef") for key in keys)
