"""campaign tables: campaign_decisions (planner decisions per experiment), campaign_sessions

Revision ID: campaign_0001
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "campaign_0001"
down_revision = "0001_core"
branch_labels = ("campaign",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_decisions",
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=120), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("planner", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("proposal", sa.JSON(), nullable=False),
        sa.Column("target_fraction", sa.Float(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("proposed_s", sa.Float(), nullable=False),
        sa.Column("reported_s", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_decisions_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", name=op.f("pk_campaign_decisions")),
    )
    with op.batch_alter_table("campaign_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_decisions_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index("ix_campaign_decisions_campaign_seq", ["campaign_id", "seq"], unique=False)
    op.create_table(
        "campaign_sessions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wall_s", sa.Float(), nullable=False),
        sa.Column("lab_start_s", sa.Float(), nullable=False),
        sa.Column("lab_end_s", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_sessions_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_sessions")),
    )
    with op.batch_alter_table("campaign_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_sessions_campaign_id"), ["campaign_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("campaign_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_sessions_campaign_id"))
    op.drop_table("campaign_sessions")
    with op.batch_alter_table("campaign_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_decisions_campaign_seq")
        batch_op.drop_index(batch_op.f("ix_campaign_decisions_campaign_id"))
    op.drop_table("campaign_decisions")
