-- Idempotency claims that survive crashes honestly (see src/call/idempotency.rs).
-- Keep in step with ../postgres/0005_idempotency_lease.sql (a test compares the two).
--
-- A claim is now taken just before the call leaves for Crisp, with a lease as long as a request
-- may last; `state` gains `unknown` (the call left, no answer came back), and `expires_at` of a
-- claim is the end of its lease plus `idempotency_unknown_hold`.
alter table idempotency_record add column lease_until bigint not null default 0;

-- Records from before this migration: their lease ended when they were made.
update idempotency_record set lease_until = created_at;

-- Claims left `pending` by the previous version belong to a process that stopped for the
-- upgrade: they are held for the default hold rather than a whole TTL.
update idempotency_record
set expires_at = case when expires_at > created_at + 900 then created_at + 900 else expires_at end
where state = 'pending';
