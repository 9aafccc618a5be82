import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

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

# A replay of every customer through one rule-set version: a long job, so a resource with its progress.
replay_run = sa.Table(
    "replay_run",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("rule_set_version", sa.Integer, sa.ForeignKey("lifecycle.rule_set.version"), nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # queued | running | succeeded | failed
    sa.Column("customers_total", sa.Integer),
    sa.Column("evaluated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("moves", JSONB, nullable=False, server_default="[]"),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    # The replica running it and until when (see shared/jobs.py): a lapsed lease means its replica died.
    sa.Column("claimed_by", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_replay_run_status", "status", postgresql_where=sa.text("status IN ('queued', 'running')")),
)

# Scheduled jobs' last start (the inactivity sweep): one replica's turn per interval (shared.jobs.claim_tick).
scheduled_job = sa.Table(
    "scheduled_job",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=False),
)
