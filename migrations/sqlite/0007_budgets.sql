-- Crisp budgets held across replicas: an account's own rate and concurrency (Crisp plans
-- differ), and the leases through which replicas sharing a database split each budget.
-- Keep in step with ../postgres/0007_budgets.sql (a test compares the two).

-- Upstream calls per second for this account; null: the configured `account_rate_limit`.
alter table crisp_account add column rate_limit double precision;

-- Concurrent upstream calls for this account; null: the configured `account_max_concurrency`.
alter table crisp_account add column max_concurrency bigint;

-- One row per budget (`account:<id>`, `key:<id>`): renewals of a budget's leases lock it
-- first, so two replicas never grant from the same free share at once.
create table budget (
    budget_name text primary key,
    touched_at bigint not null
);

-- One replica's share of one budget, until `expires_at` (unix milliseconds): a replica that
-- stops renewing loses its share when the lease expires. `want_*` is what it asked for
-- (sized from its recent demand), what the others' fair split is computed from.
create table budget_lease (
    budget_name text not null,
    replica_id text not null,
    want_rate double precision not null,
    want_slots bigint not null,
    rate double precision not null,
    slots bigint not null,
    expires_at bigint not null,
    primary key (budget_name, replica_id)
);
