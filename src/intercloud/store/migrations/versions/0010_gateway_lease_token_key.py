"""gateway_leases (cloud, token): a unique index, so that a new token is a key update

The write fence (store/fence.py) locks the lease row FOR KEY SHARE. PostgreSQL takes FOR UPDATE
for an UPDATE that changes a column of a unique index, which conflicts with that lock: a
takeover (a new token) waits for the writes in flight. A renewal keeps the token, takes only
FOR NO KEY UPDATE and does not wait for them (with FOR SHARE it did, and 15 concurrent writers
starved it for seconds, past the active's step-down time).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 02:30:00
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("gateway_leases_cloud_token", "gateway_leases", ["cloud", "token"], unique=True)


def downgrade() -> None:
    op.drop_index("gateway_leases_cloud_token", table_name="gateway_leases")
