#!/bin/sh
# Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d): the
# role the API, workers and scheduler connect as. It owns nothing; `obliviate migrate
# --grant-to obliviate_app` (run as the owner) grants it use of the tables, and of the audit
# trail only reading and appending.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="$OBLIVIATE_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE obliviate_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SQL
