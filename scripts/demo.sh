#!/usr/bin/env bash
# The main job, end to end, on this machine: a generated clinic system —
# a MySQL database in the local MariaDB, its documents in an S3 bucket (a
# local S3 server standing in for R2), a Render account (a fake of Render's
# API) and a git repository — backed up by one `lifeboat backup` into a
# local store (compressed, encrypted, deduplicated); then 1% of the data
# changes and the nightly backup runs again; then a restore drill puts the
# latest snapshot into staging (database, bucket, scratch dir), verifies
# every table, object, env file and ref, cross-checks document rows against
# objects, and prints its report with the measured RTO and the RPO.
#
# Needs: MariaDB at 127.0.0.1:3306 (root, no password; MYSQL_HOST and
# MYSQL_PORT override), the mariadb client, git, Rust; installs age, zstd
# and the local S3 server (moto) if missing. DEMO_SCALE_MB sets the
# database size (default 20). Leaves its files in target/demo.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE_MB=${DEMO_SCALE_MB:-20}
SRC_DB=lifeboat_demo_clinic
DRILL_DB=lifeboat_demo_drill
HOST=${MYSQL_HOST:-127.0.0.1}
PORT=${MYSQL_PORT:-3306}
MYSQL="mariadb -h $HOST -P $PORT -u root --default-character-set=utf8mb4"
DEMO=$PWD/target/demo
RENDER_KEY=rnd_demo_$(date +%s)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building lifeboat"
cargo build -q -p lifeboat-cli -p lifeboat-testkit
LIFEBOAT=$PWD/target/debug/lifeboat
GEN=$PWD/target/debug/lifeboat-gen
rm -rf "$DEMO" && mkdir -p "$DEMO"

say "starting the local S3 server (stands in for Cloudflare R2)"
eval "$(scripts/dev-services.sh start)"
FAKE_PID=""
cleanup() {
  [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null || true
  scripts/dev-services.sh stop
}
trap cleanup EXIT
S3=$LIFEBOAT_TEST_S3_ENDPOINT
curl -sf -X PUT "$S3/clinic-uploads" >/dev/null
curl -sf -X PUT "$S3/clinic-uploads-drill" >/dev/null

say "generating the clinic database $SRC_DB (about ${SCALE_MB} MB) and its documents"
$MYSQL -e "DROP DATABASE IF EXISTS $SRC_DB; CREATE DATABASE $SRC_DB CHARACTER SET utf8mb4"
"$GEN" clinic "$SCALE_MB" 7 | $MYSQL "$SRC_DB"
LIFEBOAT_TEST_MYSQL=$HOST:$PORT "$GEN" documents "$SRC_DB" "$S3" clinic-uploads 65536

say "starting a fake Render API (2 services, 60 env vars, secret files, an env group)"
RENDER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$GEN" render-fake "$RENDER_PORT" "$RENDER_KEY" 7 >"$DEMO/render-fake.url" &
FAKE_PID=$!

say "creating the code repository (3 branches, tags)"
CODE=$DEMO/clinic.git
git init -q --bare -b main "$CODE"
WORK=$DEMO/work
git init -q -b main "$WORK"
g() { git -C "$WORK" -c user.name=Demo -c user.email=demo@clinic.example "$@"; }
for i in $(seq 1 30); do echo "release $i" >"$WORK/CHANGELOG"; g add CHANGELOG; g commit -qm "change $i"; done
g tag v1.0; g branch develop; g branch feature/email
g push -q "$CODE" --all; g push -q "$CODE" --tags

export RENDER_API_KEY=$RENDER_KEY AWS_SECRET=testing-secret
cat >"$DEMO/lifeboat.toml" <<TOML
[repository]
url = "$DEMO/repo"
backup_key_file = "$DEMO/backup.key"

[mysql]
url = "mysql://root@$HOST:$PORT/$SRC_DB"

[objects]
endpoint = "$S3"
bucket = "clinic-uploads"
access_key_id = "testing"
secret_access_key = "\${AWS_SECRET}"

[render]
api_key = "\${RENDER_API_KEY}"
api_url = "http://127.0.0.1:$RENDER_PORT/v1"

[[git]]
url = "$CODE"
name = "clinic"

[staging]
mysql_url = "mysql://root@$HOST:$PORT/$DRILL_DB"
objects_bucket = "clinic-uploads-drill"
dir = "$DEMO/staging"

[objectives]
max_age = "26h"
rto = "30m"
drill_every = "7d"
verify_every = "7d"
TOML
export LIFEBOAT_CONFIG=$DEMO/lifeboat.toml LIFEBOAT_CACHE_DIR=$DEMO/cache LIFEBOAT_STATE_DIR=$DEMO/state
for _ in $(seq 50); do [ -s "$DEMO/render-fake.url" ] && break; sleep 0.1; done

say "lifeboat init (a restore key for the vault, a backup key for the backup host)"
$LIFEBOAT init --restore-key-file "$DEMO/restore.key" --backup-key-file "$DEMO/backup.key"

say "nightly backup #1: all four sources into one snapshot (backup key only)"
$LIFEBOAT backup --tag nightly

say "during the day: 1% of appointments change, a commit lands"
$MYSQL "$SRC_DB" -e "UPDATE appointments SET status = IF(status = 'done', 'no_show', 'done'), notes = CONCAT(COALESCE(notes, ''), ' (seen)') WHERE id % 100 = 0"
echo "hotfix" >>"$WORK/CHANGELOG"; g commit -qam "hotfix"; g push -q "$CODE" main

say "nightly backup #2: unchanged data, objects and refs are not stored again"
$LIFEBOAT backup --tag nightly

say "snapshots (listing needs only the backup key)"
$LIFEBOAT snapshots

say "restore drill: latest snapshot -> staging database, bucket and scratch dir"
set +e
$LIFEBOAT --restore-key-file "$DEMO/restore.key" drill --report "$DEMO/drill-report.json"
status=$?
set -e

say "verify --read-data: every byte of the store decrypted and re-hashed"
$LIFEBOAT --restore-key-file "$DEMO/restore.key" verify --read-data

say "status: each source's last good snapshot, the last drill and verify, the objectives"
$LIFEBOAT status || true

say "the dashboard: one HTML page, readable with the backup key alone"
$LIFEBOAT report --html "$DEMO/dashboard.html" --force

echo
echo "drill report: $DEMO/drill-report.json, .md and .html"
echo "dashboard:    $DEMO/dashboard.html (open it in a browser: file://$DEMO/dashboard.html)"
if [ $status = 0 ]; then
  echo "RESTORE DRILL PASSED: database, documents, Render config and code restored and verified."
else
  echo "RESTORE DRILL FAILED: see the report above." >&2
  exit 1
fi
