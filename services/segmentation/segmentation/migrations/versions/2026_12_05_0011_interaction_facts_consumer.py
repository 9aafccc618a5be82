"""consumer `segmentation.purchases` renamed `segmentation.interaction_facts`: its inbox rows move to the new name

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from alembic import op

from shared.messaging.tables import rename_inbox_consumer

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"


def upgrade() -> None:
    # The consumer group's offsets are copied by the consumer itself at start (`Subscription.former_names`).
    rename_inbox_consumer(op, SCHEMA, "segmentation.purchases", "segmentation.interaction_facts")


def downgrade() -> None:
    rename_inbox_consumer(op, SCHEMA, "segmentation.interaction_facts", "segmentation.purchases")
