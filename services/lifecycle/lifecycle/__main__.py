"""`python -m lifecycle serve|migrate|reconcile` — the service's process, its one-off migration job, and the
comparison of its copies of other services' facts with their owners (docs/lifecycle.md, Consistency)."""

from pathlib import Path

from shared.cli import service_main

from lifecycle.settings import SCHEMA, LifecycleSettings

if __name__ == "__main__":
    service_main(
        "lifecycle",
        settings_cls=LifecycleSettings,
        schema=SCHEMA,
        migrations_dir=Path(__file__).parent / "migrations",
        app_factory="lifecycle.app:create_app",
        reconcile="lifecycle.stages.reconcile:run",
    )
