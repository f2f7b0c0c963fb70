"""The producer's keyset page of users who have something to report."""

from adapters.database import Database
from domain.reports import ReportWindow, UserIdPage

# $1 after id, $2 window start, $3 window end, $4 page size plus one.
#
# A keyset seek: the primary key index starts right after $1, so a page deep in the
# table costs what the first one costs. A user is to be processed when, as of $3, a
# task is open (ix_tasks_user_id_created_at_open) or was completed at $2 or later
# (ix_tasks_user_id_completed_at; this also covers tasks completed after $3, which are
# still unfinished as of $3). Each probe reads at most one index entry per user.
#
# OFFSET 0 fences each probe. Without it PostgreSQL may turn an EXISTS under OR into a
# hashed subplan, which reads every matching task of every user to build its hash table
# on each page: a page then costs as much as the whole table instead of one index probe
# per user, and grows with the data rather than the page.
#
# One row more than the page is asked for: if it comes back, another page exists.
USER_IDS_SQL = """
SELECT u.id
FROM users u
WHERE u.id > $1
  AND (
      EXISTS (
          SELECT FROM tasks t
          WHERE t.user_id = u.id AND t.completed_at IS NULL AND t.created_at < $3
          OFFSET 0
      )
      OR EXISTS (
          SELECT FROM tasks t
          WHERE t.user_id = u.id AND t.completed_at >= $2 AND t.created_at < $3
          OFFSET 0
      )
  )
ORDER BY u.id
LIMIT $4
"""


class PostgresUserIdReader:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def read_page(self, window: ReportWindow, after_id: int, limit: int) -> UserIdPage:
        rows = await self._database.fetch(
            "user_ids",
            USER_IDS_SQL,
            after_id,
            window.start,
            window.end,
            limit + 1,
        )

        user_ids = tuple(row[0] for row in rows[:limit])
        has_more = len(rows) > limit
        return UserIdPage(user_ids=user_ids, next_after_id=user_ids[-1] if has_more else None)
