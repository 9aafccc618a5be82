"""`python -m clv serve|migrate|reconcile` — the service's process, its one-off migration job, and the
comparison of its copies of other services' facts with their owners (docs/clv.md, Consistency)."""

from pathlib import Path

from shared.cli import service_main

from clv.settings import SCHEMA, ClvSettings

if __name__ == "__main__":
    service_main(
        "clv",
        settings_cls=ClvSettings,
        schema=SCHEMA,
        migrations_dir=Path(__file__).parent / "migrations",
        app_factory="clv.app:create_app",
        reconcile="clv.propositions.reconcile:run",
    )
