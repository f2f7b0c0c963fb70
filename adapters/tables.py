"""Table metadata of what this service reads; Alembic owns the schema itself."""

import sqlalchemy as sa

# Every constraint and index gets a predictable name, so migrations can refer to it.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
    sa.Column("email", sa.Text, nullable=False, unique=True),
    sa.Column(
        "created_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
    ),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
    sa.Column(
        "user_id",
        sa.BigInteger,
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column(
        "created_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
    ),
    sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
)

# The indexes the two read statements rely on, as the first migration creates them.
sa.Index(
    "ix_tasks_user_id_created_at_open",
    tasks.c.user_id,
    tasks.c.created_at,
    tasks.c.id,
    postgresql_where=tasks.c.completed_at.is_(None),
)
sa.Index(
    "ix_tasks_user_id_completed_at",
    tasks.c.user_id,
    tasks.c.completed_at,
    tasks.c.id,
    postgresql_include=["created_at"],
)
