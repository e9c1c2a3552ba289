"""gateway_leases, gateways: gateway high availability (one active gateway per cloud)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_leases",
        sa.Column("cloud", sa.String(63), primary_key=True),
        sa.Column("holder", sa.String(63), nullable=True),
        sa.Column("token", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("holder_pid", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failover_ms", sa.Integer(), nullable=True),
    )
    op.create_table(
        "gateways",
        sa.Column("cloud", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateways")
    op.drop_table("gateway_leases")
