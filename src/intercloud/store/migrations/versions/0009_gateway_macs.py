"""gateway_macs: the remote MACs the active gateway learned, announced by the next one

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_macs",
        sa.Column("cloud", sa.String(63), primary_key=True),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("macs", sa.JSON(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_macs")
