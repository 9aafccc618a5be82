import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from clv.tables import metadata
from clv.transaction_summary.models import _timestamps

# A fit is a job and, once succeeded, a model version: parameters, fit statistics and holdout diagnostics.
model_fit = sa.Table(
    "model_fit",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("version", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("progress", sa.Float, nullable=False, server_default="0"),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("time_unit_days", sa.Float, nullable=False),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("holdout_days", sa.Integer, nullable=False),
    sa.Column("calibration_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("customers", sa.Integer),
    sa.Column("repeat_customers", sa.Integer),
    sa.Column("transactions", JSONB),
    sa.Column("spend", JSONB),
    sa.Column("diagnostics", JSONB),
    # A model choice (`auto`): each candidate's figures and the one chosen.
    sa.Column("selection", JSONB),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    # The replica running it and until when (see shared/jobs.py): a lapsed lease means its replica died.
    sa.Column("claimed_by", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    *_timestamps(),
)
