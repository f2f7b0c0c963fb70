"""Replays shared/examples: the contract's golden requests against the real app."""

import json
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import AUTH, PROJECT_ROOT
from tests.data import Seeder, Task, User, at

EXAMPLES = sorted((PROJECT_ROOT.parent / "shared" / "examples").glob("*.json"))


def _cases() -> list[Any]:
    cases: list[Any] = []
    for path in EXAMPLES:
        example = json.loads(path.read_text(encoding="utf-8"))
        cases.extend(
            pytest.param(example, request, id=f"{path.stem}-{index}")
            for index, request in enumerate(example["requests"])
        )
    return cases


def test_examples_are_present() -> None:
    assert EXAMPLES, "shared/examples must sit beside the project"


@pytest.mark.parametrize(("example", "request_"), _cases())
async def test_golden_request_gets_the_golden_response(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
    example: dict[str, Any],
    request_: dict[str, Any],
) -> None:
    await seeder.users(User(id=u["id"], email=u["email"]) for u in example["users"])
    await seeder.tasks(
        Task(
            id=t["id"],
            user_id=t["userId"],
            title=t["title"],
            created_at=at(t["createdAt"]),
            completed_at=at(t["completedAt"]) if t["completedAt"] else None,
        )
        for t in example["tasks"]
    )

    response = await client.request(
        request_["method"],
        request_["path"],
        json=request_.get("body"),
        headers=AUTH,
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == request_["response"]
