"""ASGI entry for server workers: `uvicorn --factory entrypoints.asgi:create_from_environment`."""

import gc

from litestar import Litestar

from entrypoints.bootstrap import build_app
from entrypoints.logs import configure_logging
from entrypoints.settings import load_settings

_FIRST_GENERATION_THRESHOLD = 50_000


def create_from_environment() -> Litestar:
    """Each worker builds its own app; the CLI has put the database URL in the environment."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        raise SystemExit("TASK_TRACKER_DATABASE_URL must be set for a server worker")
    app = build_app(settings, settings.database_url)
    _tune_garbage_collector()
    return app


def _tune_garbage_collector() -> None:
    """Keep the cycle collector off the hot path.

    A report batch allocates tens of thousands of short-lived objects, none in cycles;
    with the default thresholds each batch set off collections that walked every object
    of the frameworks, about half of a worker's CPU in a profile. Freezing what start-up
    built takes those objects out of every later collection, and a higher first
    threshold makes collections rarer; reference counting still frees the rest.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(_FIRST_GENERATION_THRESHOLD, middle, oldest)
