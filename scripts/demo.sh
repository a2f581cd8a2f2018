#!/usr/bin/env bash
# The main job, end to end, on this machine: generate a small clinic
# database in the local MariaDB, back it up into a local lifeboat store
# (compressed, encrypted, deduplicated), take a second nightly backup after
# 1% of rows change, then run a restore drill into a staging database and
# prove it matches the source table by table.
#
# Needs: MariaDB at 127.0.0.1:3306 (root, no password; override with
# DEMO_MYSQL="mariadb -h HOST -u USER"), and Rust. Everything else is built
# or installed here. Leaves its files in target/demo.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${DEMO_ROWS:-200000}
SRC_DB=lifeboat_demo_clinic
DRILL_DB=lifeboat_demo_drill
MYSQL=${DEMO_MYSQL:-mariadb -h 127.0.0.1 -u root --default-character-set=utf8mb4}
DUMP=${DEMO_DUMP:-mariadb-dump -h 127.0.0.1 -u root --default-character-set=utf8mb4}
DEMO=$PWD/target/demo

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building lifeboat"
cargo build -q -p lifeboat-cli
LIFEBOAT=$PWD/target/debug/lifeboat
rm -rf "$DEMO" && mkdir -p "$DEMO"
export LIFEBOAT_REPO=$DEMO/repo

say "generating the clinic database $SRC_DB ($ROWS appointments)"
$MYSQL -e "DROP DATABASE IF EXISTS $SRC_DB; CREATE DATABASE $SRC_DB CHARACTER SET utf8mb4"
$MYSQL "$SRC_DB" <<SQL
CREATE TABLE patients (
  id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, birth_date DATE, phone VARCHAR(30), notes TEXT
);
CREATE TABLE appointments (
  id INT PRIMARY KEY, patient_id INT NOT NULL, starts_at DATETIME NOT NULL,
  status ENUM('scheduled','done','cancelled') NOT NULL, notes VARCHAR(255),
  KEY (patient_id), FOREIGN KEY (patient_id) REFERENCES patients(id)
);
CREATE TABLE treatments (
  id INT PRIMARY KEY, appointment_id INT NOT NULL, code VARCHAR(20), cost DECIMAL(10,2),
  FOREIGN KEY (appointment_id) REFERENCES appointments(id)
);
CREATE TABLE medical_documents (
  id INT PRIMARY KEY, patient_id INT NOT NULL, storage_provider ENUM('r2','local') NOT NULL,
  storage_bucket VARCHAR(100), storage_key VARCHAR(255), sha256 CHAR(64), size_bytes BIGINT,
  FOREIGN KEY (patient_id) REFERENCES patients(id)
);
INSERT INTO patients SELECT seq, CONCAT('Patient ', seq, IF(seq % 97 = 0, ' 😀', '')),
  DATE('1950-01-01') + INTERVAL (seq * 37) % 25000 DAY, CONCAT('+62-', 800000 + seq),
  REPEAT(CONCAT('allergy note ', seq % 13, '; '), 1 + seq % 5)
  FROM seq_1_to_$((ROWS / 10));
INSERT INTO appointments SELECT seq, 1 + (seq * 7919) % $((ROWS / 10)),
  '2024-01-01 08:00:00' + INTERVAL (seq * 13) % 800000 MINUTE,
  ELT(1 + seq % 3, 'scheduled', 'done', 'cancelled'), CONCAT('checkup ', seq % 101)
  FROM seq_1_to_$ROWS;
INSERT INTO treatments SELECT seq, seq, CONCAT('D', 1000 + seq % 300), (seq % 5000) / 7
  FROM seq_1_to_$((ROWS / 2));
INSERT INTO medical_documents SELECT seq, 1 + seq % $((ROWS / 10)), IF(seq % 50 = 0, 'local', 'r2'),
  'clinic-uploads', CONCAT('patients/', seq % $((ROWS / 10)), '/scan-', seq, '.pdf'),
  SHA2(seq, 256), 1000 + seq * 31 % 5000000
  FROM seq_1_to_$((ROWS / 4));
SQL

say "lifeboat init (a restore key for the vault, a backup key for the backup host)"
$LIFEBOAT init --restore-key-file "$DEMO/restore.key" --backup-key-file "$DEMO/backup.key"

DUMP_CMD="$DUMP --single-transaction --routines --triggers --events --skip-dump-date $SRC_DB"
say "nightly backup #1 (the backup host holds only the backup key)"
$LIFEBOAT backup --backup-key-file "$DEMO/backup.key" --stdin-from-command "$DUMP_CMD" \
  --item clinic.sql --tag nightly

say "1% of appointments change during the day"
$MYSQL "$SRC_DB" -e "UPDATE appointments SET status='done', notes=CONCAT(notes, ' (seen)') WHERE id % 100 = 0"

say "nightly backup #2: only what changed is stored"
$LIFEBOAT backup --backup-key-file "$DEMO/backup.key" --stdin-from-command "$DUMP_CMD" \
  --item clinic.sql --tag nightly

say "snapshots (listing needs only the backup key)"
$LIFEBOAT snapshots --backup-key-file "$DEMO/backup.key"

say "restore drill: latest snapshot -> staging database $DRILL_DB"
start=$(date +%s%N)
$MYSQL -e "DROP DATABASE IF EXISTS $DRILL_DB; CREATE DATABASE $DRILL_DB CHARACTER SET utf8mb4"
$LIFEBOAT restore --restore-key-file "$DEMO/restore.key" latest --item clinic.sql --to - | $MYSQL "$DRILL_DB"
end=$(date +%s%N)

say "drill check: row counts and checksums, source vs restored"
# CHECKSUM TABLE is comparable here because both databases live on the
# same server; lifeboat's MySQL source computes its own portable checksum.
fail=0
printf '%-20s %10s %10s %12s %12s\n' table src_rows drill_rows src_checksum drill_checksum
for t in patients appointments treatments medical_documents; do
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
