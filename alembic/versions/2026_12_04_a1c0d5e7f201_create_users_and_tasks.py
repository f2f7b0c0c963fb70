"""Create users and tasks, with the indexes the two read statements rely on.

Revision ID: a1c0d5e7f201
Revises:
Create Date: 2026-12-04 16:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1c0d5e7f201"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_tasks_user_id_users",
            ondelete="CASCADE",
        ),
    )

    # Open tasks of a user, oldest first: the unfinished count (index-only), the
    # unfinished list, and the producer's "has an open task" probe.
    op.create_index(
        "ix_tasks_user_id_created_at_open",
        "tasks",
        ["user_id", "created_at", "id"],
        postgresql_where=sa.text("completed_at IS NULL"),
    )
    # Every task of a user by completion time (open ones last, as NULLs sort last): the
    # completions in a window, newest first; the tasks completed after a window's end;
    # the producer's "completed since the window's start" probe; and the lookup that
    # ON DELETE CASCADE needs. created_at rides along so the filters stay index-only.
    op.create_index(
        "ix_tasks_user_id_completed_at",
        "tasks",
        ["user_id", "completed_at", "id"],
        postgresql_include=["created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_user_id_completed_at", table_name="tasks")
    op.drop_index("ix_tasks_user_id_created_at_open", table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("users")
