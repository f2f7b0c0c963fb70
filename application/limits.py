"""Bounds of every number a caller may send; the HTTP schemas repeat them in their types."""

MAX_ID = 2**63 - 1

DEFAULT_PAGE_LIMIT = 1000
MAX_PAGE_LIMIT = 10_000

MAX_BATCH_SIZE = 1000

DEFAULT_MAX_TASKS = 5
MAX_MAX_TASKS = 50
