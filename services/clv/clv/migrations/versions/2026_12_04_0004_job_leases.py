"""fits and scoring runs run once across replicas: a lease (claimed_by, lease_until), one unfinished per currency

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
SCHEMA = "clv"
TABLES = {"model_fit": ["currency"], "scoring_run": ["currency"]}


def upgrade() -> None:
    for table, target in TABLES.items():
        op.add_column(table, sa.Column("claimed_by", sa.Text), schema=SCHEMA)
        op.add_column(table, sa.Column("lease_until", sa.DateTime(timezone=True)), schema=SCHEMA)
        # Before leases a killed replica left its jobs `running` forever: all but the newest per target are failed
        # so the one-unfinished index can be built (the newest is recovered by the reaper like any lapsed lease).
        op.execute(
            sa.text(f"""
            UPDATE {SCHEMA}.{table} j SET status = 'failed', error = 'interrupted: superseded at the upgrade',
                finished_at = now(), updated_at = now()
            WHERE j.status IN ('queued', 'running') AND EXISTS (
                SELECT 1 FROM {SCHEMA}.{table} k WHERE k.status IN ('queued', 'running')
                  AND k.{target[0]} = j.{target[0]} AND k.created_at > j.created_at)""")
        )
        op.execute(unfinished_index(table, target, SCHEMA))


def downgrade() -> None:
    for table in TABLES:
        op.execute(sa.text(f"DROP INDEX IF EXISTS {SCHEMA}.uq_{table}_one_unfinished"))
        op.drop_column(table, "lease_until", schema=SCHEMA)
        op.drop_column(table, "claimed_by", schema=SCHEMA)
