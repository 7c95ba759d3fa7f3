-- Key quotas and usage counters, shared by every replica on the database.
-- Keep in step with ../postgres/0008_quotas_usage.sql (a test compares the two).

-- A key's quota: at most `quota_limit` admitted calls per UTC `quota_period` ('day' or
-- 'month'); null: no quota.
alter table api_key add column quota_limit bigint;
alter table api_key add column quota_period text;

-- How much of a key's quota the replicas have claimed in one period (`period_start`, unix
-- seconds of its first UTC midnight). Replicas claim chunks with one conditional update and
-- give back what they did not use, so `used` never exceeds the quota.
create table key_quota_use (
    api_key_id text not null,
    period_start bigint not null,
    used bigint not null,
    last_grant bigint not null,
    primary key (api_key_id, period_start)
);

-- Calls per workspace, key, action and UTC day (`day`: unix seconds of its midnight), added
-- to by every replica's batches.
create table usage_count (
    workspace_id text not null,
    api_key_id text not null,
    action text not null,
    day bigint not null,
    calls bigint not null,
    refused bigint not null,
    failed bigint not null,
    crisp_2xx bigint not null,
    crisp_4xx bigint not null,
    crisp_5xx bigint not null,
    crisp_none bigint not null,
    upstream_ms bigint not null,
    primary key (workspace_id, api_key_id, action, day)
);
create index usage_count_day on usage_count (day);
