#!/usr/bin/env bash
# scripts/bench.sh mysql [SCALE_MB]: the generated clinic database (about
# SCALE_MB MB of data) in the local MariaDB, peers side by side in one run:
#   dump:    mariadb-dump --single-transaction | zstd -3 -T2 | age,
#            mydumper -t 2 (plain, and compressed), lifeboat backup --source mysql
#   restore: mariadb < dump, myloader -t 2, lifeboat restore --source mysql
#            (which also reads every table back to check it)
#   nightly: 1% of appointments updated at random + 1% new audit rows, then
#            the second backup of each tool: time and bytes added.
# Best of 2 for timings; peak RSS from GNU time. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-1000}
MYSQL="mariadb -h 127.0.0.1 -u root --default-character-set=utf8mb4"
SRC=lb_bench_src
scripts/dev-services.sh install
command -v mydumper >/dev/null || { s=""; [ "$(id -u)" -eq 0 ] || s=sudo; $s apt-get install -y -qq mydumper >/dev/null 2>&1 || true; }
command -v restic >/dev/null || { s=""; [ "$(id -u)" -eq 0 ] || s=sudo; $s apt-get install -y -qq restic >/dev/null 2>&1 || true; }
cargo build -q --release -p lifeboat-cli -p lifeboat-testkit
LB=$PWD/target/release/lifeboat
GEN=$PWD/target/release/lifeboat-gen
W=$(mktemp -d /var/tmp/lifeboat-bench.XXXXXX)
BL_PID=""
cleanup() {
    [ -n "$BL_PID" ] && kill "$BL_PID" 2>/dev/null && wait "$BL_PID" 2>/dev/null || true
    rm -rf "$W"; for d in $SRC lb_bench_a lb_bench_b lb_bench_c; do $MYSQL -e "DROP DATABASE IF EXISTS $d" || true; done
}
trap cleanup EXIT
export LIFEBOAT_CACHE_DIR=$W/cache RESTIC_PASSWORD=bench

echo "generating the clinic database (scale $SCALE MB)..." >&2
$MYSQL -e "DROP DATABASE IF EXISTS $SRC; CREATE DATABASE $SRC CHARACTER SET utf8mb4"
"$GEN" clinic "$SCALE" 7 | $MYSQL "$SRC"
DUMP_BYTES=$(mariadb-dump -h 127.0.0.1 -u root --single-transaction --routines --triggers --events $SRC | wc -c)
age-keygen -o "$W/age.key" 2>/dev/null
RCPT=$(age-keygen -y "$W/age.key")

# settle: wait (at most 3 minutes) until the server has been idle for 3 s
# (below 1% of a core: InnoDB done flushing what was just written), so no job
# pays for the one before it (a dump right after the bulk load ran 20-60%
# slower while pages were flushed). Without a local server process, a fixed
# pause.
# The server process listening on PORT (empty when none is local).
port_pid() { ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }
settle() {
    local pid a b
    pid=${SERVER_PID:-$(port_pid 3306)}
    [ -n "$pid" ] || { sleep 30; return 0; }
    for _ in $(seq 60); do
        a=$(awk '{print $14 + $15}' "/proc/$pid/stat"); sleep 3; b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        [ $((b - a)) -le 3 ] && return 0
    done
    echo "bench: the server did not settle in 3 minutes; timings may be high" >&2
}

results=()
measure() { # LABEL CMD [SETUP]
    local label=$1 cmd=$2 setup=${3:-true} best="" rss=""
    for _ in 1 2; do
        eval "$setup"
        /usr/bin/time -f "%e %M" -o "$W/t" bash -c "$cmd" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
        read -r t m <"$W/t"
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; rss=$m; fi
    done
    results+=("| $label | $best s | $((rss / 1024)) MB |")
    echo "$label: $best s, $((rss / 1024)) MB" >&2
}
fresh_repo() {
    rm -rf "$W/repo" "$W/r.key" "$W/b.key" "$W/cache"
    $LB --repo "$W/repo" init --restore-key-file "$W/r.key" --backup-key-file "$W/b.key" >/dev/null
}
fresh_db() { $MYSQL -e "DROP DATABASE IF EXISTS $1; CREATE DATABASE $1 CHARACTER SET utf8mb4"; }
URL=mysql://root@127.0.0.1:3306/$SRC
LBBACKUP="$LB --repo '$W/repo' backup -q --backup-key-file '$W/b.key' --source mysql --mysql-url $URL"

settle
measure "mariadb-dump \| zstd -3 -T2 \| age" "mariadb-dump -h 127.0.0.1 -u root --single-transaction --routines --triggers --events $SRC | zstd -q -3 -T2 | age -r $RCPT > '$W/dump.sql.zst.age'"
if command -v mydumper >/dev/null; then
    measure "mydumper -t 2 (plain)" "mydumper -h 127.0.0.1 -u root -B $SRC -t 2 -o '$W/myd' -R -E -G --trx-consistency-only" "rm -rf '$W/myd'"
    measure "mydumper -t 2 -c (compressed)" "mydumper -h 127.0.0.1 -u root -B $SRC -t 2 -c -o '$W/mydc' -R -E -G --trx-consistency-only" "rm -rf '$W/mydc'"
fi
measure "lifeboat backup --source mysql" "$LBBACKUP" fresh_repo
FIRST=$(du -sb "$W/repo" | cut -f1)
# What of it are the row-hash records kept for hosts without a disk.
RECORDS=$($LB --repo "$W/repo" snapshots --json --backup-key-file "$W/b.key" \
    | python3 -c 'import json,sys; s=json.load(sys.stdin)[-1]; print(s["sources"]["mysql"]["facts"].get("row_hashes",{}).get("stored_bytes",0))')
# The same store as a host without a disk finds it: no row-hash cache.
cp -a "$W/repo" "$W/repo-nodisk"

settle
measure "mariadb < dump (restore)" "age -d -i '$W/age.key' '$W/dump.sql.zst.age' | zstd -q -d | $MYSQL lb_bench_a" "fresh_db lb_bench_a"
if command -v myloader >/dev/null; then
    measure "myloader -t 2 (restore)" "myloader -h 127.0.0.1 -u root -d '$W/myd' -B lb_bench_b -t 2 -o" "fresh_db lb_bench_b"
fi
measure "lifeboat restore --source mysql (replay + check)" "$LB --repo '$W/repo' restore -q --restore-key-file '$W/r.key' latest --source mysql --target mysql://root@127.0.0.1:3306/lb_bench_c --force"

# The nightly: 1% scattered updates and 1% new audit rows.
CHANGE="UPDATE appointments SET status = IF(status = 'done', 'no_show', 'done'), notes = CONCAT(COALESCE(notes, ''), ' (seen)') WHERE (id * 7) % 100 = 3;
  INSERT INTO audit_log (user_id, action, entity, entity_id, details, at) SELECT user_id, 'view', entity, entity_id, details, at FROM audit_log WHERE id % 100 = 1;"
$MYSQL $SRC -e "$CHANGE"
# CPU seconds (user + system) the server spent, from /proc (0 when the
# server is not a local process).
server_cpu() {
    local pid=${SERVER_PID:-}
    [ -n "$pid" ] || pid=$(port_pid 3306)
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || { echo 0; return; }
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$pid/stat"
}
# night LABEL CMD: wall time, lifeboat's CPU and the server's CPU of one run.
night() {
    local s0 s1 start end
    s0=$(server_cpu); start=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$W/cpu" bash -c "$2" >/dev/null
    end=$(date +%s.%N); s1=$(server_cpu)
    read -r u sy <"$W/cpu"
    awk "BEGIN{printf \"%.2f %.2f %.2f\", $end - $start, $u + $sy, $s1 - $s0}"
}
settle
read -r NIGHT_T NIGHT_CPU NIGHT_SRV <<<"$(night cache "$LBBACKUP")"
SECOND=$(( $(du -sb "$W/repo" | cut -f1) - FIRST ))
# The same nightly on a host that keeps no disk (Render Cron Job, a CI
# runner without a cache): an empty cache directory.
settle
NODISK_FIRST=$(du -sb "$W/repo-nodisk" | cut -f1)
read -r NODISK_T NODISK_CPU NODISK_SRV <<<"$(night nodisk "export LIFEBOAT_CACHE_DIR=$W/cache-empty; ${LBBACKUP//\/repo\'/\/repo-nodisk\'}")"
NODISK=$(( $(du -sb "$W/repo-nodisk" | cut -f1) - NODISK_FIRST ))
RESTIC_LINE=""
if command -v restic >/dev/null; then
    restic -q -r "$W/restic" init >/dev/null
    mariadb-dump -h 127.0.0.1 -u root --single-transaction --routines --triggers --events lb_bench_c > "$W/d1.sql"
    restic -q -r "$W/restic" backup --stdin --stdin-filename dump.sql < "$W/d1.sql" >/dev/null
    R1=$(du -sb "$W/restic" | cut -f1)
    mariadb-dump -h 127.0.0.1 -u root --single-transaction --routines --triggers --events $SRC > "$W/d2.sql"
    restic -q -r "$W/restic" backup --stdin --stdin-filename dump.sql < "$W/d2.sql" >/dev/null
    R2=$(( $(du -sb "$W/restic" | cut -f1) - R1 ))
    RESTIC_LINE=$(awk "BEGIN{printf \"| restic backup --stdin of the dump | %d | %d | %.1f%% |\", $R1, $R2, 100*$R2/$R1}")
fi

# The binlog-derived nightly ([mysql] binlog_nightly): the same database and
# change in a private MariaDB that writes a binary log (ROW, FULL), since the
# nightly reads the change from it. First backup (a full read), the change,
# then the nightly: it captures the binlog and reads no rows.
BL_LINE=""
if command -v mariadb-install-db >/dev/null; then
    BL_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$W/bl/tmp"
    (cd "$W/bl" && mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$W/bl/data" \
        --tmpdir="$W/bl/tmp" --auth-root-authentication-method=normal >/dev/null)
    /usr/sbin/mariadbd --no-defaults --user="$(id -un)" --datadir="$W/bl/data" --port="$BL_PORT" \
        --bind-address=127.0.0.1 --socket="$W/bl/s.sock" --tmpdir="$W/bl/tmp" \
        --log-bin="$W/bl/data/bin" --binlog-format=ROW --server-id=1 \
        --innodb-buffer-pool-size=512M --max-allowed-packet=256M >/dev/null 2>&1 &
    BL_PID=$!
    BLSQL="mariadb -h 127.0.0.1 -P $BL_PORT -u root --default-character-set=utf8mb4"
    for _ in $(seq 300); do $BLSQL -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
    echo "generating the clinic database again, in a server with a binary log..." >&2
    $BLSQL -e "CREATE DATABASE clinic CHARACTER SET utf8mb4"
    "$GEN" clinic "$SCALE" 7 | $BLSQL clinic
    printf '[mysql]\nurl = "mysql://root@127.0.0.1:%s/clinic"\nbinlog = true\nbinlog_nightly = true\n' "$BL_PORT" >"$W/bl.toml"
    $LB --repo "$W/repo-bl" init --restore-key-file "$W/rbl.key" --backup-key-file "$W/bbl.key" >/dev/null
    BLBACKUP="LIFEBOAT_CACHE_DIR=$W/cache-bl $LB --config '$W/bl.toml' --repo '$W/repo-bl' backup -q --backup-key-file '$W/bbl.key'"
    SERVER_PID=$BL_PID
    settle
    read -r BL_FIRST_T _ _ <<<"$(night first "$BLBACKUP")"
    BL_FIRST=$(du -sb "$W/repo-bl" | cut -f1)
    $BLSQL clinic -e "$CHANGE"
    settle
    read -r BL_T BL_CPU BL_SRV <<<"$(night derived "$BLBACKUP")"
    BL_ADDED=$(( $(du -sb "$W/repo-bl" | cut -f1) - BL_FIRST ))
    # What the night costs at restore time: the full snapshot's replay plus
    # the binlog applied, against the plain restore measured above.
    $BLSQL -e "CREATE DATABASE r CHARACTER SET utf8mb4"
    BL_RESTORE_T=$( { /usr/bin/time -f "%e" $LB --config "$W/bl.toml" --repo "$W/repo-bl" restore -q --restore-key-file "$W/rbl.key" latest --source mysql --target "mysql://root@127.0.0.1:$BL_PORT/r" --force >/dev/null; } 2>&1 | tail -1)
    SERVER_PID=""
    BL_LINE=$(awk "BEGIN{printf \"| lifeboat, binlog-derived (second run %s s = %.2fx its first backup's %s s; CPU: lifeboat %s s, server %s s; its restore %s s) | %d | %d | %.2f%% |\", \"$BL_T\", $BL_T / $BL_FIRST_T, \"$BL_FIRST_T\", \"$BL_CPU\", \"$BL_SRV\", \"$BL_RESTORE_T\", $BL_FIRST, $BL_ADDED, 100*$BL_ADDED/$BL_FIRST}")
fi

echo
echo "Clinic database: scale $SCALE, plain dump $((DUMP_BYTES / 1000000)) MB; $(nproc) cores; MariaDB $($MYSQL -N -e 'SELECT VERSION()'); $(date -u +%Y-%m-%d)."
echo
echo "| job | time (best of 2) | peak RSS |"
echo "|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "| nightly after 1% updates + 1% inserts | first run bytes | second run adds | share |"
echo "|---|---|---|---|"
awk "BEGIN{printf \"| lifeboat (second run %s s; CPU: lifeboat %s s, server %s s) | %d | %d | %.2f%% |\n\", \"$NIGHT_T\", \"$NIGHT_CPU\", \"$NIGHT_SRV\", $FIRST, $SECOND, 100*$SECOND/$FIRST}"
awk "BEGIN{printf \"| lifeboat, host without its cache (second run %s s; CPU: lifeboat %s s, server %s s) | %d | %d | %.2f%% |\n\", \"$NODISK_T\", \"$NODISK_CPU\", \"$NODISK_SRV\", $NODISK_FIRST, $NODISK, 100*$NODISK/$NODISK_FIRST}"
[ -n "$BL_LINE" ] && echo "$BL_LINE"
[ -n "$RESTIC_LINE" ] && echo "$RESTIC_LINE"
echo
echo "Row-hash records in the first backup: $RECORDS bytes of plaintext (8 bytes a row; sealed, not compressible)."
