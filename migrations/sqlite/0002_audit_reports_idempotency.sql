-- Audit trail, caller reports and idempotency records.
-- Keep in step with ../postgres/0002_audit_reports_idempotency.sql (a test compares the two).

-- One row per write call and per refused call; never request or response bodies.
create table audit_event (
    audit_event_id integer primary key autoincrement,
    at bigint not null,
    workspace_id text,
    api_key_id text,
    crisp_account_id text,
    action text not null,
    status integer not null,
    upstream_status integer,
    duration_ms bigint not null,
    request_id text not null,
    reason text
);
create index audit_event_at on audit_event (at);
create index audit_event_workspace on audit_event (workspace_id, at);

-- `POST /api/crisp/report`: what a caller (often an agent) wants the operators to look at.
create table report (
    report_id text primary key,
    workspace_id text not null references workspace (workspace_id) on delete cascade,
    api_key_id text not null,
    at bigint not null,
    message text not null,
    context text,
    conversation text
);
create index report_workspace on report (workspace_id, at);

-- A write sent with `Idempotency-Key` runs once per workspace and key: the first request
-- claims the row (state `pending`), stores its answer (state `done`), and repeats replay it.
create table idempotency_record (
    workspace_id text not null,
    idempotency_key text not null,
    request_hash text not null,
    state text not null,
    status integer,
    response text,
    created_at bigint not null,
    expires_at bigint not null,
    primary key (workspace_id, idempotency_key)
);
create index idempotency_record_expires on idempotency_record (expires_at);
