-- The gateway's tables. Times are unix seconds; ids are random text made by the gateway.
-- Keep in step with ../sqlite/0001_init.sql (a test compares the two).

create table workspace (
    workspace_id text primary key,
    name text not null unique,
    created_at bigint not null
);

-- Gateway keys: only the argon2id hash of a key is kept; the id is the public part of the key.
create table api_key (
    api_key_id text primary key,
    workspace_id text not null references workspace (workspace_id) on delete cascade,
    name text,
    secret_hash text not null,
    read_only boolean not null default false,
    allowed_actions text,
    created_at bigint not null,
    expires_at bigint,
    revoked_at bigint,
    last_used_at bigint
);
create index api_key_workspace on api_key (workspace_id);

-- Crisp accounts: the Crisp key is sealed with the master key (see src/secret/vault.rs).
create table crisp_account (
    crisp_account_id text primary key,
    workspace_id text not null references workspace (workspace_id) on delete cascade,
    label text not null,
    identifier text not null,
    sealed_key text not null,
    website_id text not null,
    tier text not null,
    is_default boolean not null default false,
    created_at bigint not null,
    unique (workspace_id, label)
);

-- Every change that running gateways must see (a revoked key, an edited account) is logged
-- here in the same transaction; each process follows the log to drop what it cached.
create table change_log (
    change_id bigserial primary key,
    kind text not null,
    subject_id text not null,
    created_at bigint not null
);
