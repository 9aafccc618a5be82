import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from lifecycle.tables import metadata

# Every version of the rule set ever saved; the active one is the most recently activated.
rule_set = sa.Table(
    "rule_set",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("parameters", JSONB, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.Text),
    sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
