"""partner trust: email/phone linking per partner (off by default), merges attributed to the partners behind them

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
SCHEMA = "interaction"


def upgrade() -> None:
    # Off for every partner, existing ones included: an operator turns it on for the partners it trusts
    # (docs/security.md); until then their emails and phones no longer link customers.
    op.add_column(
        "partner", sa.Column("trust_contact_linking", sa.Boolean, server_default=sa.false(), nullable=False), schema=SCHEMA
    )
    # An untrusted partner's emails and phones are kept under its source: searches by email or phone match any
    # source, by (kind, value).
    op.create_index("ix_customer_identifier_kind_external_id", "customer_identifier", ["kind", "external_id"], schema=SCHEMA)
    op.add_column(
        "customer_merge",
        sa.Column("caused_by", ARRAY(sa.Text), server_default=sa.text("'{}'::text[]"), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("customer_merge", "caused_by", schema=SCHEMA)
    op.drop_index("ix_customer_identifier_kind_external_id", "customer_identifier", schema=SCHEMA)
    op.drop_column("partner", "trust_contact_linking", schema=SCHEMA)
