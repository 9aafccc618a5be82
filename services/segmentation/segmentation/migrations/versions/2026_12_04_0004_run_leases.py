"""runs once across replicas: a lease (claimed_by, lease_until), one unfinished run per family

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from shared.jobs import unfinished_index

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"


def upgrade() -> None:
    op.add_column("segmentation_run", sa.Column("claimed_by", sa.Text), schema=SCHEMA)
    op.add_column("segmentation_run", sa.Column("lease_until", sa.DateTime(timezone=True)), schema=SCHEMA)
    # All but the newest unfinished run per family are failed, so the one-unfinished index can be built.
    op.execute(
        sa.text(f"""
        UPDATE {SCHEMA}.segmentation_run j SET status = 'failed', error = 'interrupted: superseded at the upgrade',
            finished_at = now(), updated_at = now()
        WHERE j.status IN ('queued', 'running') AND EXISTS (
            SELECT 1 FROM {SCHEMA}.segmentation_run k WHERE k.status IN ('queued', 'running')
              AND k.family = j.family AND k.created_at > j.created_at)""")
    )
    op.execute(unfinished_index("segmentation_run", ["family"], SCHEMA))


def downgrade() -> None:
    op.execute(sa.text(f"DROP INDEX IF EXISTS {SCHEMA}.uq_segmentation_run_one_unfinished"))
    op.drop_column("segmentation_run", "lease_until", schema=SCHEMA)
    op.drop_column("segmentation_run", "claimed_by", schema=SCHEMA)
