"""The command line every service shares: `serve` (uvicorn), `migrate` (Alembic upgrade to head) and, for a
service that copies other services' facts, `reconcile` (shared/reconcile.py)."""

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

import uvicorn

from shared.log import configure_logging
from shared.migrations import downgrade, upgrade
from shared.serving import tune_gc_once_started
from shared.settings import ServiceSettings


def service_main(
    name: str,
    *,
    settings_cls: type[ServiceSettings],
    schema: str,
    migrations_dir: Path,
    app_factory: str,
    reconcile: str | None = None,
) -> None:
    """`reconcile`: "module:function", an async function (settings, repair) → the drifts it found."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API and the background workers")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    migrate = sub.add_parser("migrate", help="apply this service's migrations (upgrade to head)")
    migrate.add_argument("--revision", default="head")
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to --revision instead")
    if reconcile:
        rec = sub.add_parser(
            "reconcile",
            help="compare this service's copies of other services' facts with the "
            "owners' published state (exit 1 on drift); --repair applies it",
        )
        rec.add_argument("--repair", action="store_true", help="apply the owners' state, with its version")
    args = parser.parse_args()

    settings = settings_cls()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    if args.command == "migrate":
        if args.downgrade:
            downgrade(migrations_dir, schema, settings.database_url, args.revision if args.revision != "head" else "base")
        else:
            upgrade(migrations_dir, schema, settings.database_url, args.revision)
        return
    if args.command == "reconcile" and reconcile:
        module, function = reconcile.split(":")
        drifts = asyncio.run(getattr(importlib.import_module(module), function)(settings, args.repair))
        sys.exit(1 if drifts and not args.repair else 0)
    tune_gc_once_started()
    # Graceful shutdown: uvicorn stops accepting, the lifespan stops consumers after their current batch.
    uvicorn.run(
        app_factory, factory=True, host=args.host, port=args.port, log_config=None, timeout_graceful_shutdown=30, access_log=False
    )
