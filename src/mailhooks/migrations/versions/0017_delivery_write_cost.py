"""what a delivery writes: one index fewer on deliveries, room for its updates on the page

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 04:40:00

Every delivery updates its ``deliveries`` row twice (the claim, the result), and on PostgreSQL neither
update can be HOT (``status`` and ``next_attempt_at`` are in the queue index), so each one writes an entry
into every index of the table. ``ix_deliveries_domain_status (domain_id, status)`` had no reader that
needed it (every query that filters by domain also filters by account, served by
``ix_deliveries_account_id``, or by time, served by ``ix_deliveries_created``; the queue by
``ix_deliveries_queue``), and it cost about 170 bytes of WAL per delivery (docs/benchmarks.md, "PostgreSQL:
what a delivery writes").

On PostgreSQL the table also gets ``fillfactor = 80``: a delivery row is updated twice soon after it is
inserted, and with room on its page the new version is written beside the old one (a smaller WAL record,
no second page dirtied). It applies to pages filled from now on; existing pages are not rewritten.
And autovacuum comes after 1 % of the rows changed (not 20 %), unthrottled: every claim and result leaves a
dead row version whose queue-index entry the next claims walk past until vacuum removes it. With 300,000
deliveries released at once (`make bench --only backlog --pending 300000`, PostgreSQL, 2 workers), the
first fifth drained at 2,960/s before and 3,483/s after, PostgreSQL's CPU 0.21 → 0.18 ms per delivery.
"""

from __future__ import annotations

from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_deliveries_domain_status', table_name='deliveries')
    if op.get_context().dialect.name == 'postgresql':
        op.execute('ALTER TABLE deliveries SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0)')


def downgrade() -> None:
    if op.get_context().dialect.name == 'postgresql':
        op.execute('ALTER TABLE deliveries RESET (fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_cost_delay)')
    op.create_index('ix_deliveries_domain_status', 'deliveries', ['domain_id', 'status'])
