"""mesh: network members, direct adjacencies between members

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 17:35:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adjacencies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("replica_id", sa.Integer(), nullable=False),
        sa.Column("peer_id", sa.Integer(), nullable=False),
        sa.Column("vni", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["peer_id"], ["peers.id"]),
        sa.ForeignKeyConstraint(["replica_id"], ["replicas.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("replica_id", "peer_id"),
    )
    with op.batch_alter_table("expansion_targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("members_sent", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("direct", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("members", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(sa.Column("direct_sent", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.drop_column("direct_sent")
        batch_op.drop_column("members")
    with op.batch_alter_table("expansion_targets", schema=None) as batch_op:
        batch_op.drop_column("direct")
        batch_op.drop_column("members_sent")
    op.drop_table("adjacencies")
