"""`python -m clv serve|migrate` — the service's process and its one-off migration job."""

from pathlib import Path

from shared.cli import service_main

from clv.settings import SCHEMA, ClvSettings

if __name__ == "__main__":
    service_main(
        "clv", settings_cls=ClvSettings, schema=SCHEMA,
        migrations_dir=Path(__file__).parent / "migrations", app_factory="clv.app:create_app",
    )
