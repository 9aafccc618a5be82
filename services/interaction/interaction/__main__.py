"""`python -m interaction serve|migrate` — the service's process and its one-off migration job."""

from pathlib import Path

from shared.cli import service_main

from interaction.settings import SCHEMA, InteractionSettings

if __name__ == "__main__":
    service_main(
        "interaction",
        settings_cls=InteractionSettings,
        schema=SCHEMA,
        migrations_dir=Path(__file__).parent / "migrations",
        app_factory="interaction.app:create_app",
    )
