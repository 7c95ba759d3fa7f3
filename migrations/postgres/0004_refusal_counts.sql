-- Refusals aggregated per reason, client and minute.
-- Keep in step with ../sqlite/0004_refusal_counts.sql (a test compares the two).

-- A refusal row stands for `count` refusals within a minute from one client: the key id
-- presented (`api_key_id`) or, without one, the client's address (`client`).
alter table audit_event add column count bigint not null default 1;
alter table audit_event add column client text;
