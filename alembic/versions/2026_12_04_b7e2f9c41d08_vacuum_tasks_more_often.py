"""Vacuum tasks more often, so the report's counts stay index-only.

The unfinished and completed counts are index-only scans, which skip the table only for
pages the visibility map marks all-visible. The defaults wait for 20 % of a table to
change before vacuuming; on a large tasks table that leaves many pages of recently
completed tasks unmarked for hours, and a heavy user's report slows down many times
over. Two per cent keeps the map current.

Revision ID: b7e2f9c41d08
Revises: a1c0d5e7f201
Create Date: 2026-12-04 17:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b7e2f9c41d08"
down_revision: str | None = "a1c0d5e7f201"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SETTINGS = (
    "autovacuum_vacuum_scale_factor",
    "autovacuum_vacuum_insert_scale_factor",
    "autovacuum_analyze_scale_factor",
)


def upgrade() -> None:
    assignments = ", ".join(f"{name} = 0.02" for name in _SETTINGS)
    op.execute(f"ALTER TABLE tasks SET ({assignments})")


def downgrade() -> None:
    op.execute(f"ALTER TABLE tasks RESET ({', '.join(_SETTINGS)})")
