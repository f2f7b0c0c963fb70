"""ASGI entry for server workers: `uvicorn --factory entrypoints.asgi:create_from_environment`."""

from litestar import Litestar

from entrypoints.bootstrap import build_app
from entrypoints.logs import configure_logging
from entrypoints.settings import load_settings


def create_from_environment() -> Litestar:
    """Each worker builds its own app; the CLI has put the database URL in the environment."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        raise SystemExit("TASK_TRACKER_DATABASE_URL must be set for a server worker")
    return build_app(settings, settings.database_url)
