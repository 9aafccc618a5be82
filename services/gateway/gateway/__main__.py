"""`python -m gateway serve|migrate|keys …` — the front door, its migration job, and API key management.

python -m gateway keys create --role partner --partner shop-eu --name "shop-eu prod" [--expires-in-days 365]
python -m gateway keys list [--all]
python -m gateway keys revoke KEY_ID
"""

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn

from shared.db import make_engine, make_session_factory
from shared.log import configure_logging
from shared.migrations import downgrade, upgrade
from shared.serving import tune_gc_once_started

from gateway.keys import repository
from gateway.keys.service import create_key
from gateway.security.principal import Role
from gateway.settings import SCHEMA, GatewaySettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def _keys(settings: GatewaySettings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url, pool_size=2)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            if args.keys_command == "create":
                expires = datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
                raw, row = await create_key(
                    session,
                    name=args.name or f"{args.role} key",
                    role=Role(args.role),
                    partner_id=args.partner,
                    expires_at=expires,
                    rate_limit_per_s=args.rate_limit,
                )
                print(
                    f"id:      {row.id}\nrole:    {row.role}"
                    + (f"\npartner: {row.partner_id}" if row.partner_id else "")
                    + f"\nexpires: {row.expires_at or 'never'}",
                    file=sys.stderr,
                )
                print("the key (shown once; send it in the X-API-Key header):", file=sys.stderr)
                print(raw)
            elif args.keys_command == "list":
                rows = await repository.page(session, role=None, include_revoked=args.all, after=None, limit=10_000)
                for r in rows:
                    state = "revoked" if r.revoked_at else "active"
                    print(
                        f"{r.id}  {r.prefix}…  {r.role:<8} {r.partner_id or '-':<20} {state:<8} "
                        f"expires={r.expires_at or 'never'}  last_used={r.last_used_at or 'never'}  {r.name}"
                    )
            else:
                revoked = await repository.revoke(session, uuid.UUID(args.key_id))
                if revoked is None:
                    print(f"no API key {args.key_id}", file=sys.stderr)
                    return 1
                print(f"revoked {revoked.id} at {revoked.revoked_at}")
    finally:
        await engine.dispose()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    migrate = sub.add_parser("migrate", help="apply the gateway's migrations (upgrade to head)")
    migrate.add_argument("--revision", default="head")
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to --revision instead")
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--partner", help="the partner id (the events' source); required for --role partner")
    create.add_argument("--name")
    create.add_argument("--expires-in-days", type=int)
    create.add_argument("--rate-limit", type=float, help="requests per second (default: the gateway's)")
    listing = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    args = parser.parse_args()

    settings = GatewaySettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    if args.command == "migrate":
        if args.downgrade:
            downgrade(MIGRATIONS, SCHEMA, settings.database_url, args.revision if args.revision != "head" else "base")
        else:
            upgrade(MIGRATIONS, SCHEMA, settings.database_url, args.revision)
        return 0
    if args.command == "keys":
        return asyncio.run(_keys(settings, args))
    tune_gc_once_started()
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_config=None,
        timeout_graceful_shutdown=30,
        access_log=False,
        http=settings.http_protocol(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
