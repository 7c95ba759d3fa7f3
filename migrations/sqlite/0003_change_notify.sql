-- Postgres wakes replicas with LISTEN/NOTIFY here (see ../postgres/0003_change_notify.sql).
-- SQLite serves one machine, where the periodic poll of the change log is enough.
select 1;
