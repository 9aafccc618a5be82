"""customer.channel_use: uses and latest use per channel, so that ingestion extends the traits of a customer
instead of recomputing them from the whole history (interaction/traits/service.py)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None
SCHEMA = "interaction"

# What the traits recomputation counts (interaction.logged on the timeline, purchases not cancelled), for every
# customer at once. Merged customers are included: an undone merge recomputes them anyway.
BACKFILL = """
WITH p AS (
    SELECT p.customer_id, p.channel, p.occurred_at
    FROM interaction.purchase p
    WHERE NOT EXISTS (SELECT 1 FROM interaction.purchase_adjustment a
                      WHERE a.source = p.source AND a.order_id = p.order_id AND a.cancelled)
),
channel_use AS (
    SELECT customer_id, channel, count(*) AS n, max(occurred_at) AS last_at FROM (
        SELECT customer_id, channel, occurred_at FROM interaction.activity WHERE type = 'interaction.logged'
        UNION ALL
        SELECT customer_id, channel, occurred_at FROM p
    ) u GROUP BY customer_id, channel
)
UPDATE interaction.customer c SET channel_use = u.per_channel
FROM (
    SELECT customer_id, jsonb_object_agg(channel, jsonb_build_object('n', n, 'at', last_at)) AS per_channel
    FROM channel_use GROUP BY customer_id
) u
WHERE c.id = u.customer_id
"""


def upgrade() -> None:
    op.add_column(
        "customer",
        sa.Column("channel_use", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        schema=SCHEMA,
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_column("customer", "channel_use", schema=SCHEMA)
