#!/usr/bin/env bash
# The main job, end to end, on this machine: generate a small clinic
# database in the local MariaDB, back it up into a local lifeboat store
# (compressed, encrypted, deduplicated), take a second nightly backup after
# 1% of rows change, then run a restore drill into a staging database and
# prove it matches the source table by table.
#
# Needs: MariaDB at 127.0.0.1:3306 (root, no password; MYSQL_HOST and
# MYSQL_PORT override), the mariadb client, and Rust. DEMO_SCALE_MB sets the
# database size (default 50). Leaves its files in target/demo.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE_MB=${DEMO_SCALE_MB:-50}
SRC_DB=lifeboat_demo_clinic
DRILL_DB=lifeboat_demo_drill
MYSQL="mariadb -h ${MYSQL_HOST:-127.0.0.1} -P ${MYSQL_PORT:-3306} -u root --default-character-set=utf8mb4"
DEMO=$PWD/target/demo

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building lifeboat"
cargo build -q -p lifeboat-cli -p lifeboat-testkit
LIFEBOAT=$PWD/target/debug/lifeboat
GEN=$PWD/target/debug/lifeboat-gen
rm -rf "$DEMO" && mkdir -p "$DEMO"
export LIFEBOAT_REPO=$DEMO/repo

say "generating the clinic database $SRC_DB (about ${SCALE_MB} MB)"
$MYSQL -e "DROP DATABASE IF EXISTS $SRC_DB; CREATE DATABASE $SRC_DB CHARACTER SET utf8mb4"
"$GEN" clinic "$SCALE_MB" 7 | $MYSQL "$SRC_DB"

say "lifeboat init (a restore key for the vault, a backup key for the backup host)"
$LIFEBOAT init --restore-key-file "$DEMO/restore.key" --backup-key-file "$DEMO/backup.key"

SRC_URL="mysql://root@${MYSQL_HOST:-127.0.0.1}:${MYSQL_PORT:-3306}/$SRC_DB"
DRILL_URL="mysql://root@${MYSQL_HOST:-127.0.0.1}:${MYSQL_PORT:-3306}/$DRILL_DB"
say "nightly backup #1 (the backup host holds only the backup key)"
$LIFEBOAT backup --backup-key-file "$DEMO/backup.key" --source mysql --mysql-url "$SRC_URL" --tag nightly

say "during the day: 1% of appointments change (the audit trigger adds rows too)"
$MYSQL "$SRC_DB" -e "UPDATE appointments SET status = IF(status = 'done', 'no_show', 'done'), notes = CONCAT(COALESCE(notes, ''), ' (seen)') WHERE id % 100 = 0"

say "nightly backup #2: unchanged data is not stored again"
$LIFEBOAT backup --backup-key-file "$DEMO/backup.key" --source mysql --mysql-url "$SRC_URL" --tag nightly

say "snapshots (listing needs only the backup key)"
$LIFEBOAT snapshots --backup-key-file "$DEMO/backup.key"

say "restore drill: latest snapshot -> staging database $DRILL_DB (lifeboat checks every table)"
start=$(date +%s%N)
$LIFEBOAT restore --restore-key-file "$DEMO/restore.key" latest --source mysql --target "$DRILL_URL" --force \
  | tee "$DEMO/replay.txt"
end=$(date +%s%N)

say "independent check: the server's own CHECKSUM TABLE, source vs restored"
# Comparable here because both databases live on the same server;
# lifeboat's replay check above uses its own server-independent checksum.
fail=0
printf '%-20s %10s %10s %12s %12s\n' table src_rows drill_rows src_checksum drill_checksum
for t in users patients appointments treatments medical_documents audit_log reminder_log; do
  a=$($MYSQL -N -e "SELECT COUNT(*) FROM $SRC_DB.$t")
  b=$($MYSQL -N -e "SELECT COUNT(*) FROM $DRILL_DB.$t")
  ca=$($MYSQL -N -e "CHECKSUM TABLE $SRC_DB.$t" | awk '{print $2}')
  cb=$($MYSQL -N -e "CHECKSUM TABLE $DRILL_DB.$t" | awk '{print $2}')
  printf '%-20s %10s %10s %12s %12s\n' "$t" "$a" "$b" "$ca" "$cb"
  [ "$a" = "$b" ] && [ "$ca" = "$cb" ] || fail=1
done

say "verify --read-data: every byte of the store decrypted and re-hashed"
$LIFEBOAT verify --restore-key-file "$DEMO/restore.key" --read-data

cat >"$DEMO/drill-report.json" <<JSON
{"snapshot": "latest", "target": "$DRILL_DB", "restore_seconds": $(awk "BEGIN { printf \"%.3f\", ($end - $start) / 1e9 }"), "tables_match": $([ $fail = 0 ] && echo true || echo false)}
JSON
say "drill report: $DEMO/drill-report.json"
cat "$DEMO/drill-report.json"
if [ $fail = 0 ]; then
  echo "RESTORE DRILL PASSED: every table of the restored database matches the source."
else
  echo "RESTORE DRILL FAILED: see the table above." >&2
  exit 1
fi
