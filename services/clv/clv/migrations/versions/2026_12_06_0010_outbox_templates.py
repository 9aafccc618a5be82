"""outbox rows may name a template instead of carrying their payload (shared.messaging.tables)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

from shared.messaging.tables import add_outbox_templates_v2, drop_outbox_templates_v2

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None
SCHEMA = "clv"


def upgrade() -> None:
    add_outbox_templates_v2(op, SCHEMA)


def downgrade() -> None:
    drop_outbox_templates_v2(op, SCHEMA)
