"""segment membership copy keeps segmentation's version: the copy follows the owner's order of each membership's
changes, not their business time

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None
SCHEMA = "interaction"


def upgrade() -> None:
    # Rows copied before hold none: the next versioned change of the membership replaces them, as any versioned
    # event replaces an unversioned copy (shared/contracts/ordering.py).
    op.execute(f"ALTER TABLE {SCHEMA}.segment_membership ADD COLUMN version bigint")


def downgrade() -> None:
    op.execute(f"ALTER TABLE {SCHEMA}.segment_membership DROP COLUMN version")
