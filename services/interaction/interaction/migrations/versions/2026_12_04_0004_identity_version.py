"""identity version: merges and unmerges are numbered in commit order, so copies can tell which merge holds

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
SCHEMA = "interaction"


def upgrade() -> None:
    # Taken under the identity lock (interaction/identity/repository.py), so increasing in commit order.
    op.execute(f"CREATE SEQUENCE {SCHEMA}.identity_version_seq")


def downgrade() -> None:
    op.execute(f"DROP SEQUENCE {SCHEMA}.identity_version_seq")
