"""`python -m segmentation serve|migrate|reconcile` — the service's process, its one-off migration job, and the
comparison of its copies of other services' facts with their owners (docs/segmentation.md, Consistency)."""

from pathlib import Path

from shared.cli import service_main

from segmentation.settings import SCHEMA, SegmentationSettings

if __name__ == "__main__":
    service_main(
        "segmentation",
        settings_cls=SegmentationSettings,
        schema=SCHEMA,
        migrations_dir=Path(__file__).parent / "migrations",
        app_factory="segmentation.app:create_app",
        reconcile="segmentation.profiles.reconcile:run",
    )
