"""The `task-tracker` command: migrate, serve, demo, and minting API keys."""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from adapters.demo_data import generate_demo_data
from entrypoints.api_keys import client_name_problem, entry_line, new_api_key
from entrypoints.bootstrap import migrate, resolve_database_url
from entrypoints.logs import configure_logging
from entrypoints.scheduler import digest
from entrypoints.server import ServerOptions, serve
from entrypoints.settings import PREFIX, Settings, SettingsError, load_settings

DEMO_CLIENT = "demo"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["digest"]:
        # The scheduler client speaks only HTTP; the server's settings are not its concern.
        return digest.main(arguments[1:])
    args = _parser().parse_args(arguments)
    try:
        settings = load_settings()
    except SettingsError as err:
        print(f"task-tracker: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        result: int = args.run(args, settings)
    except KeyboardInterrupt:
        # The server has already shut down cleanly; Ctrl-C needs no traceback.
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="task-tracker",
        description="Internal reporting API of the task tracker.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    migrate_cmd = commands.add_parser("migrate", help="bring the database to the newest schema")
    migrate_cmd.set_defaults(run=_migrate)

    serve = commands.add_parser("serve", help="serve the API (migrating first)")
    _add_server_options(serve)
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate before serving")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser("demo", help="migrate, load demo data, print a key, serve")
    _add_server_options(demo)
    demo.add_argument("--users", type=int, default=5000, help="demo users to create (default 5000)")
    demo.set_defaults(run=_demo, no_migrate=False)

    commands.add_parser(
        "digest",
        help="run the nightly digest pass against a running service (see digest --help)",
        add_help=False,
    )

    api_key = commands.add_parser("api-key", help="manage API keys")
    api_key_commands = api_key.add_subparsers(required=True, metavar="ACTION")
    new = api_key_commands.add_parser("new", help="mint a key and print its configuration entry")
    new.add_argument("--name", required=True, help="the client the key is for, e.g. scheduler")
    new.add_argument(
        "--expires-in",
        type=_duration,
        help="refuse the key after this long: 90d, 12h or 30m (default: never)",
    )
    new.set_defaults(run=_new_api_key)
    return parser


def _add_server_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    command.add_argument("--port", type=int, help="port to listen on (default 8000)")
    command.add_argument("--workers", type=int, help="server processes (default 1)")


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    url = resolve_database_url(settings)
    asyncio.run(migrate(url, settings))
    print("The database is at the newest schema.", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    url = resolve_database_url(settings)
    if not args.no_migrate:
        asyncio.run(migrate(url, settings))
    return _run_server(args, settings, url)


def _run_server(args: argparse.Namespace, settings: Settings, url: str) -> int:
    # Workers are separate processes that build their own app from the environment.
    os.environ[PREFIX + "DATABASE_URL"] = url
    serve(
        ServerOptions(
            host=args.host or settings.host,
            port=args.port if args.port is not None else settings.port,
            workers=args.workers or settings.workers,
            grace_s=settings.shutdown_grace_ms / 1000,
            drain_delay_s=settings.drain_delay_ms / 1000,
        ),
    )
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    url = resolve_database_url(settings)
    asyncio.run(migrate(url, settings))
    example_ids = asyncio.run(_load_demo_data(url, args.users)) or [1, 2, 3]

    key = new_api_key()
    entry = entry_line(DEMO_CLIENT, key)
    configured = os.environ.get(PREFIX + "API_KEYS", "")
    os.environ[PREFIX + "API_KEYS"] = f"{configured},{entry}" if configured.strip() else entry
    os.environ.setdefault(PREFIX + "DOCS_ENABLED", "true")
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    base = f"http://{host}:{port}/api/v1/internal/scheduler"
    print(
        f"""
Demo API key (shown once; the service keeps only its SHA-256): {key}

Try:
  curl -s -H 'X-API-Key: {key}' '{base}/user-ids-for-processing?limit=5'
  curl -s -H 'X-API-Key: {key}' -H 'Content-Type: application/json' \\
       -d '{{"userIds": {example_ids}, "maxTasks": 3}}' '{base}/user-task-reports-by-ids'
OpenAPI document: http://{host}:{port}/schema/openapi.json
""",
        flush=True,
    )
    return _run_server(args, load_settings(), url)


async def _load_demo_data(url: str, users: int) -> list[int]:
    """Fill an empty database; return a few users with open tasks, for the printed example."""
    connection = await asyncpg.connect(url)
    try:
        existing = await connection.fetchval("SELECT count(*) FROM users")
        if existing:
            print(f"The database already holds {existing} users; keeping them.")
        else:
            print(f"Generating demo data for {users} users...", flush=True)
            summary = await generate_demo_data(connection, users=users, now=datetime.now(UTC))
            print(
                f"Loaded {summary.users} users and {summary.tasks} tasks",
                f"({summary.completed} completed).",
            )
        rows = await connection.fetch(
            "SELECT u.id FROM users u"
            " WHERE EXISTS (SELECT FROM tasks t WHERE t.user_id = u.id AND t.completed_at IS NULL)"
            " ORDER BY u.id LIMIT 3",
        )
        return [row[0] for row in rows]
    finally:
        await connection.close()


def _new_api_key(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name
    if problem := client_name_problem(name):
        print(f"task-tracker: --name {problem}", file=sys.stderr)
        return 2
    key = new_api_key()
    expires_at = datetime.now(UTC) + args.expires_in if args.expires_in else None
    print(f"API key for {name} (shown once, store it in the client's secret store):")
    print(f"  {key}")
    print(f"Add this entry to {PREFIX}API_KEYS (comma-separated) or as a line of the keys file:")
    print(f"  {entry_line(name, key, expires_at)}")
    return 0


def _duration(text: str) -> timedelta:
    units = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
    number, unit = text[:-1], text[-1:]
    if not number.isdigit() or unit not in units or int(number) == 0:
        raise argparse.ArgumentTypeError(f"expected a duration like 90d, 12h or 30m, got {text!r}")
    return int(number) * units[unit]


if __name__ == "__main__":
    sys.exit(main())
