# Sourced by CI scripts: makes sure a Postgres server answers on 127.0.0.1:5432 and exports
# TEST_DATABASE_URL for it. Installs and starts Postgres when the machine has none running.
ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "installing postgresql"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  fi
  export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  if ! psql "$TEST_DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1; then
    # A fresh Debian install asks for a password over TCP: give the postgres role one.
    su postgres -c "psql -qc \"alter user postgres password 'postgres'\"" >/dev/null
    export TEST_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres
    psql "$TEST_DATABASE_URL" -Atqc 'select 1' >/dev/null
  fi
}
