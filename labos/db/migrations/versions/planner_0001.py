"""planner tables: planner_pairwise_reactions (the persistent pairwise-reaction store)

Revision ID: planner_0001
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "planner_0001"
down_revision = "0001_core"
branch_labels = ("planner",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "planner_pairwise_reactions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("atmosphere", sa.String(length=32), nullable=False),
        sa.Column("reactants", sa.String(length=255), nullable=False),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("t_inert_max_c", sa.Float(), nullable=True),
        sa.Column("t_react_min_c", sa.Float(), nullable=True),
        sa.Column("ambiguous", sa.Boolean(), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("max_fraction", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_planner_pairwise_reactions")),
        sa.UniqueConstraint("atmosphere", "reactants", name="uq_planner_pairwise_reactions_pair"),
    )
    with op.batch_alter_table("planner_pairwise_reactions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_planner_pairwise_reactions_reactants"), ["reactants"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("planner_pairwise_reactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_planner_pairwise_reactions_reactants"))
    op.drop_table("planner_pairwise_reactions")
