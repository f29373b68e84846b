#!/bin/sh
# Run once by the postgres image on its first start: the login the API replicas use. What it
# may do is granted by `safellm audit setup-db --grant safellm_api` (the db-setup service).
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$API_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE safellm_api LOGIN PASSWORD :'pw';
SQL
