"""segment membership copy keeps segmentation's version: a membership left is kept (member false) with the
version of its exit, so a late older entry does not bring it back; `entered_at` becomes `changed_at`, when
segmentation decided the present state

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None
SCHEMA = "clv"


def upgrade() -> None:
    op.execute(f"ALTER TABLE {SCHEMA}.segment_membership ADD COLUMN member boolean NOT NULL DEFAULT true")
    op.execute(f"ALTER TABLE {SCHEMA}.segment_membership ALTER COLUMN member DROP DEFAULT")
    op.execute(f"ALTER TABLE {SCHEMA}.segment_membership ADD COLUMN version bigint")
    op.execute(f"ALTER TABLE {SCHEMA}.segment_membership RENAME COLUMN entered_at TO changed_at")


def downgrade() -> None:
    op.execute(f"DELETE FROM {SCHEMA}.segment_membership WHERE NOT member")
    op.execute(f"ALTER TABLE {SCHEMA}.segment_membership RENAME COLUMN changed_at TO entered_at")
    op.execute(f"ALTER TABLE {SCHEMA}.segment_membership DROP COLUMN version")
    op.execute(f"ALTER TABLE {SCHEMA}.segment_membership DROP COLUMN member")
