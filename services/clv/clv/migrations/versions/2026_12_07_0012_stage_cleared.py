"""a stage copy may hold no stage: lifecycle's stage.cleared, kept with its version so a late older stage.changed
does not bring the stage back

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None
SCHEMA = "clv"


def upgrade() -> None:
    op.alter_column("customer_stage", "stage", existing_type=sa.Text, nullable=True, schema=SCHEMA)


def downgrade() -> None:
    op.execute("DELETE FROM clv.customer_stage WHERE stage IS NULL")
    op.alter_column("customer_stage", "stage", existing_type=sa.Text, nullable=False, schema=SCHEMA)
