"""consumer `clv.purchases` renamed `clv.interaction_facts`: its inbox rows move to the new name

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from alembic import op

from shared.messaging.tables import rename_inbox_consumer

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None
SCHEMA = "clv"


def upgrade() -> None:
    # The consumer group's offsets are copied by the consumer itself at start (`Subscription.former_names`).
    rename_inbox_consumer(op, SCHEMA, "clv.purchases", "clv.interaction_facts")


def downgrade() -> None:
    rename_inbox_consumer(op, SCHEMA, "clv.interaction_facts", "clv.purchases")
