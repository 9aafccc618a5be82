"""stored profile version: each customer keeps the version of the last profile published for it, so the
profile state route (`GET /v1/customers/profiles/state`) can say what copies of `customer.updated` must equal

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None
SCHEMA = "interaction"


def upgrade() -> None:
    op.execute(f"ALTER TABLE {SCHEMA}.customer ADD COLUMN profile_version bigint")
    # Profiles published before this migration carried versions nobody kept: each customer's present profile is
    # given a new one, greater than any published, so a copy repaired to it ignores any of those still in flight.
    op.execute(f"UPDATE {SCHEMA}.customer SET profile_version = nextval('{SCHEMA}.profile_version_seq')")


def downgrade() -> None:
    op.execute(f"ALTER TABLE {SCHEMA}.customer DROP COLUMN profile_version")
