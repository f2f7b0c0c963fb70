"""Arranging users and tasks for a test, written straight into the tables."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg


def at(text: str) -> datetime:
    """A UTC timestamp from `2026-12-03T18:20:00Z`-style text."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    user_id: int
    title: str
    created_at: datetime
    completed_at: datetime | None = None


class Seeder:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def users(self, users: Iterable[User]) -> None:
        await self.connection.copy_records_to_table(
            "users",
            records=[(u.id, u.email) for u in users],
            columns=["id", "email"],
        )

    async def tasks(self, tasks: Iterable[Task]) -> None:
        await self.connection.copy_records_to_table(
            "tasks",
            records=[(t.id, t.user_id, t.title, t.created_at, t.completed_at) for t in tasks],
            columns=["id", "user_id", "title", "created_at", "completed_at"],
        )
