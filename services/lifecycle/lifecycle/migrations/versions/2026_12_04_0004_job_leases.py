"""replays run once across replicas (claimed_by, lease_until); the sweep's turn per interval (scheduled_job)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
SCHEMA = "lifecycle"


def upgrade() -> None:
    op.add_column("replay_run", sa.Column("claimed_by", sa.Text), schema=SCHEMA)
    op.add_column("replay_run", sa.Column("lease_until", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_table(
        "scheduled_job",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("scheduled_job", schema=SCHEMA)
    op.drop_column("replay_run", "lease_until", schema=SCHEMA)
    op.drop_column("replay_run", "claimed_by", schema=SCHEMA)
