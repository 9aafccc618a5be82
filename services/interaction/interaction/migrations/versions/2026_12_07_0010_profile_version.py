"""profile version: each `customer.updated` carries the customer's whole published profile and a version in
commit order, so copies keep the latest state whatever order the events arrive in

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None
SCHEMA = "interaction"


def upgrade() -> None:
    # Taken under the identity lock, like identity_version_seq: every writer of a customer's properties holds it.
    op.execute(f"CREATE SEQUENCE {SCHEMA}.profile_version_seq")


def downgrade() -> None:
    op.execute(f"DROP SEQUENCE {SCHEMA}.profile_version_seq")
