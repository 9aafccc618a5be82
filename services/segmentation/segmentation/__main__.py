"""`python -m segmentation serve|migrate` — the service's process and its one-off migration job."""

from pathlib import Path

from shared.cli import service_main

from segmentation.settings import SCHEMA, SegmentationSettings

if __name__ == "__main__":
    service_main(
        "segmentation", settings_cls=SegmentationSettings, schema=SCHEMA,
        migrations_dir=Path(__file__).parent / "migrations", app_factory="segmentation.app:create_app",
    )
