-- Admin tokens (`sk_admin_<id>_<secret>`): who may use the admin API and console. Only the
-- argon2id hash of a token is kept; the id is its public part. Revoking one is logged in
-- change_log (kind `admin_token`) so that every running gateway forgets it.
-- Keep in step with ../sqlite/0009_admin_tokens.sql (a test compares the two).
create table admin_token (
    admin_token_id text primary key,
    name text,
    secret_hash text not null,
    created_at bigint not null,
    revoked_at bigint
);
