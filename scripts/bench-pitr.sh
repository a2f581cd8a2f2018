#!/usr/bin/env bash
# scripts/bench.sh pitr [SCALE_MB] [LOAD_SECS] [FLUSH_SECS]: point-in-time
# recovery on the generated clinic database (default 1000 MB) in a private
# MariaDB that writes a binary log (ROW, FULL), under a steady write load
# (default 600 s) while `lifeboat binlog --follow` stores it (flush every
# FLUSH_SECS, default 60). Side by side, in one run:
#   - the stored binlog's bytes against the raw binlog files' bytes;
#   - restore --until the end of the load against the plain full restore,
#     and against `mariadb-binlog | mariadb` applying the same binlog on
#     top of the same restored snapshot;
#   - the streamer's CPU per MB of binlog and its peak RSS (goal < 200 MB);
#   - the RPO follow mode reached: for each run, its commit time minus the
#     moment up to which the run before it had everything (goal: at most
#     FLUSH_SECS + 5 s).
# Release build. Needs mariadbd, mariadb-install-db, mariadb-binlog.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-1000}
LOAD_SECS=${2:-600}
FLUSH=${3:-60}
scripts/dev-services.sh install
cargo build -q --release -p lifeboat-cli -p lifeboat-testkit
LB=$PWD/target/release/lifeboat
GEN=$PWD/target/release/lifeboat-gen
W=$(mktemp -d /var/tmp/lifeboat-bench-pitr.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SERVER_PID=""
FOLLOW_PID=""
cleanup() {
    [ -n "$FOLLOW_PID" ] && kill "$FOLLOW_PID" 2>/dev/null || true
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

echo "starting a private MariaDB with a binary log on port $PORT..." >&2
mkdir -p "$W/db/tmp"
(cd "$W/db" && mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$W/db/data" \
    --tmpdir="$W/db/tmp" --auth-root-authentication-method=normal >/dev/null)
/usr/sbin/mariadbd --no-defaults --user="$(id -un)" --datadir="$W/db/data" --port="$PORT" \
    --bind-address=127.0.0.1 --socket="$W/db/s.sock" --tmpdir="$W/db/tmp" \
    --log-bin="$W/db/data/bin" --binlog-format=ROW --server-id=1 \
    --innodb-buffer-pool-size=512M --max-allowed-packet=256M >/dev/null 2>&1 &
SERVER_PID=$!
MYSQL="mariadb -h 127.0.0.1 -P $PORT -u root --default-character-set=utf8mb4"
for _ in $(seq 300); do $MYSQL -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done

echo "generating the clinic database (scale $SCALE MB)..." >&2
$MYSQL -e "CREATE DATABASE clinic CHARACTER SET utf8mb4"
"$GEN" clinic "$SCALE" 7 | $MYSQL clinic
$LB --repo "$W/repo" init --restore-key-file "$W/r.key" --backup-key-file "$W/b.key" >/dev/null
cat >"$W/lifeboat.toml" <<EOF
[repository]
url = "$W/repo"

[mysql]
url = "mysql://root@127.0.0.1:$PORT/clinic"
binlog = true
binlog_flush_secs = $FLUSH
EOF
LBC="$LB --config $W/lifeboat.toml"
export LIFEBOAT_CACHE_DIR=$W/cache

binlog_bytes() { $MYSQL -N -e "SHOW BINARY LOGS" | awk '{s += $2} END {print s}'; }
$LBC --backup-key-file "$W/b.key" backup -q
REPO0=$(du -sb "$W/repo" | cut -f1)
RAW0=$(binlog_bytes)
SNAP=$($LBC --backup-key-file "$W/b.key" --json snapshots | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin) if "binlog" not in x["tags"]][-1]
b = s["sources"]["mysql"]["facts"]["binlog"]
print(b["file"], b["pos"])')
read -r SNAP_FILE SNAP_POS <<<"$SNAP"

echo "steady write load for $LOAD_SECS s with binlog --follow (flush $FLUSH s)..." >&2
# The streamer prints a JSON line per run as it commits it; each is
# stamped with the moment it arrived (the RPO below).
( /usr/bin/time -f "%U %S %M" -o "$W/follow.time" \
    $LBC --backup-key-file "$W/b.key" --json binlog --follow 2>"$W/follow.err" \
    | python3 -u -c 'import sys, time
for line in sys.stdin:
    print(f"{time.time():.3f} {line.strip()}", flush=True)' >"$W/runs.txt" ) &
FOLLOW_PID=$!
# Each second: ten visits (appointments updated), twenty audit rows, five
# reminders; every tenth second a batch over 0.01% of the patients (their
# full rows, photos included, go to the binlog: ROW, FULL).
python3 - "$LOAD_SECS" <<'EOF' | $MYSQL clinic
import sys, time, random
random.seed(7)
end = time.time() + int(sys.argv[1])
i = 0
while time.time() < end:
    t0 = time.time()
    ids = ",".join(str(random.randint(1, 200000)) for _ in range(10))
    print(f"UPDATE appointments SET status = IF(status = 'done', 'no_show', 'done'), notes = LEFT(CONCAT('v{i} ', COALESCE(notes, '')), 200) WHERE id IN ({ids});")
    rows = ", ".join(f"({k % 50 + 1}, 'view', 'appointment', {k}, JSON_OBJECT('i', {i}, 'k', {k}), NOW(6))" for k in range(i * 20, i * 20 + 20))
    print(f"INSERT INTO audit_log (user_id, action, entity, entity_id, details, at) VALUES {rows};")
    rem = ", ".join(f"({1000000 + i * 5 + k}, NOW(), 'sms')" for k in range(5))
    print(f"INSERT INTO reminder_log VALUES {rem};")
    if i % 10 == 9:
        print("START TRANSACTION;")
        print(f"UPDATE patients SET notes = LEFT(CONCAT('.', COALESCE(notes, '')), 1000) WHERE id % 9973 = {i % 9973};")
        print(f"DELETE FROM reminder_log WHERE patient_id BETWEEN {1000000 + (i - 9) * 5} AND {1000000 + (i - 5) * 5};")
        print("COMMIT;")
    sys.stdout.flush()
    i += 1
    time.sleep(max(0.0, 1.0 - (time.time() - t0)))
EOF
T_END=$($MYSQL -N -e "SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')")
sleep $((FLUSH + 5))
# Stop the streamer (time's child), so time reports on it.
TIME_PID=$(pgrep -f "^/usr/bin/time -f %U %S %M -o $W/follow.time" || true)
[ -n "$TIME_PID" ] && pkill -TERM -P "$TIME_PID" || true
wait "$FOLLOW_PID" || true
FOLLOW_PID=""
read -r F_USER F_SYS F_RSS < <(tail -1 "$W/follow.time")
RAW=$(( $(binlog_bytes) - RAW0 ))
STORED=$(( $(du -sb "$W/repo" | cut -f1) - REPO0 ))
# RPO reached: a commit just after run k-1 caught up (the server's clock,
# whole seconds) is stored when run k is committed (the line's stamp).
RPO=$(python3 -c '
import json, sys
runs = []
for line in open(sys.argv[1]):
    at, doc = line.split(" ", 1)
    runs.append((float(at), json.loads(doc)["run"]["caught_up_at"]))
worst = max((b[0] - a[1] for a, b in zip(runs, runs[1:])), default=0.0)
print(f"{worst:.1f} {len(runs)}")' "$W/runs.txt")
read -r RPO_MAX RUNS <<<"$RPO"

echo "restoring..." >&2
timed() { /usr/bin/time -f "%e %M" -o "$W/t" bash -c "$1" >"$W/out" 2>"$W/err" || { cat "$W/err" >&2; exit 1; }; cat "$W/t"; }
read -r FULL_T FULL_RSS <<<"$(timed "$LBC --restore-key-file '$W/r.key' restore -q latest --source mysql --target mysql://root@127.0.0.1:$PORT/r_full --force")"
read -r UNTIL_T UNTIL_RSS <<<"$(timed "$LBC --restore-key-file '$W/r.key' --json restore latest --source mysql --until '$T_END' --target mysql://root@127.0.0.1:$PORT/r_until --force")"
APPLY_T=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["applied"]["seconds"], 1))' "$W/out")
# The peer: the snapshot restored the same way, then the server's own
# binlog files from the snapshot's coordinates through mariadb-binlog.
$LBC --restore-key-file "$W/r.key" restore -q latest --source mysql --target "mysql://root@127.0.0.1:$PORT/r_peer" --force
STOP=$(date -u -d "$T_END UTC + 1 second" '+%Y-%m-%d %H:%M:%S')
FILES=$(cd "$W/db/data" && ls bin.[0-9]* | awk -v f="$SNAP_FILE" '$0 >= f' | sed "s|^|$W/db/data/|" | tr '\n' ' ')
read -r PEER_T PEER_RSS <<<"$(timed "TZ=UTC mariadb-binlog --start-position=$SNAP_POS --stop-datetime='$STOP' --database=clinic --rewrite-db='clinic->r_peer' $FILES | $MYSQL")"
same() { $MYSQL -N -e "CHECKSUM TABLE $1.appointments, $1.audit_log, $1.reminder_log, $1.patients" | awk '{print $2}' | tr '\n' ' '; }
SRC_SUM=$(same clinic)
[ "$(same r_until)" = "$SRC_SUM" ] || { echo "bench: restore --until differs from the source" >&2; exit 1; }
[ "$(same r_peer)" = "$SRC_SUM" ] || echo "bench: the mariadb-binlog replay differs from the source" >&2

MB=$(awk "BEGIN{print $RAW / 1048576}")
echo
echo "Clinic database: scale $SCALE; $LOAD_SECS s of steady writes; flush every $FLUSH s; $(nproc) cores; MariaDB $($MYSQL -N -e 'SELECT VERSION()'); $(date -u +%Y-%m-%d)."
echo
echo "| measure | value |"
echo "|---|---|"
awk "BEGIN{printf \"| raw binlog written during the load | %.1f MB |\n\", $RAW / 1e6}"
awk "BEGIN{printf \"| stored by lifeboat (compressed, encrypted, %d runs) | %.1f MB (%.0f%% of raw) |\n\", $RUNS, $STORED / 1e6, 100 * $STORED / $RAW}"
awk "BEGIN{printf \"| streamer CPU (user + system) | %.2f s, %.2f s per MB of binlog |\n\", $F_USER + $F_SYS, ($F_USER + $F_SYS) / $MB}"
echo "| streamer peak RSS | $((F_RSS / 1024)) MB |"
echo "| RPO reached (worst run) | $RPO_MAX s (goal: at most $((FLUSH + 5)) s) |"
echo
echo "| restore | time | peak RSS |"
echo "|---|---|---|"
echo "| lifeboat restore --source mysql (snapshot only, replay + check) | $FULL_T s | $((FULL_RSS / 1024)) MB |"
echo "| lifeboat restore --until end of load (replay + check + apply) | $UNTIL_T s (apply $APPLY_T s) | $((UNTIL_RSS / 1024)) MB |"
echo "| mariadb-binlog \\| mariadb, the same binlog on the same snapshot | $PEER_T s | $((PEER_RSS / 1024)) MB |"
