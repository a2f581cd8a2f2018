#!/usr/bin/env bash
# Benchmarks, peer tools side by side on the same data, in one run.
#
#   scripts/bench.sh store [SIZE_MIB]   # default 1024
#   scripts/bench.sh mysql [SCALE_MB]   # default 1000: the generated clinic DB
#   scripts/bench.sh objects [COUNT] [MAX_MIB]  # default 5000 objects up to 50 MiB
#   scripts/bench.sh objects-scale [COUNT]      # default 1,000,000 small objects
#   scripts/bench.sh pitr [SCALE_MB] [LOAD_SECS] [FLUSH_SECS]  # default 1000, 600, 60
#
# store: ingest of a stream (half incompressible, half SQL-like text) into a
# local repository vs `zstd -3 -T2 | age`, and restore vs `age -d | zstd -d`;
# restic (backup --stdin / dump) for context; a rerun and a 1% in-place
# change; peak RSS of each. Best of 2 runs. Prints a Markdown table for
# docs/BENCHMARKS.md. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-store}
if [ "$what" = mysql ]; then
    exec bash scripts/bench-mysql.sh "${2:-1000}"
fi
if [ "$what" = pitr ]; then
    exec bash scripts/bench-pitr.sh "${2:-1000}" "${3:-600}" "${4:-60}"
fi
if [ "$what" = objects-scale ]; then
    exec bash scripts/bench-objects-scale.sh "${2:-1000000}"
fi
if [ "$what" = objects ]; then
    exec bash scripts/bench-objects.sh "${2:-5000}" "${3:-50}"
fi
SIZE_MIB=${2:-1024}
[ "$what" = store ] || { echo "usage: $0 store [SIZE_MIB] | mysql [SCALE_MB] | objects [COUNT] [MAX_MIB] | objects-scale [COUNT] | pitr [SCALE_MB] [LOAD_SECS] [FLUSH_SECS]" >&2; exit 2; }

scripts/dev-services.sh install
command -v restic >/dev/null || { sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo; $sudo_ apt-get install -y -qq restic >/dev/null 2>&1 || true; }
cargo build -q --release -p lifeboat-cli -p lifeboat-testkit
LB=$PWD/target/release/lifeboat
GEN=$PWD/target/release/lifeboat-gen
W=$(mktemp -d /var/tmp/lifeboat-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
DATA=$W/stream.bin
$GEN stream $((SIZE_MIB * 1024 * 1024)) 7 "$DATA"
age-keygen -o "$W/age.key" 2>/dev/null
RCPT=$(age-keygen -y "$W/age.key")
export RESTIC_PASSWORD=bench

# measure LABEL CMD: best wall time of 2 runs, and the peak RSS of that run.
results=()
measure() {
    local label=$1 cmd=$2 best="" rss="" setup=${3:-true}
    for _ in 1 2; do
        eval "$setup"
        sync
        /usr/bin/time -f "%e %M" -o "$W/t" bash -c "$cmd" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
        read -r t m <"$W/t"
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; rss=$m; fi
    done
    local mibs
    mibs=$(awk "BEGIN{printf \"%.0f\", $SIZE_MIB / $best}")
    results+=("| $label | $best s | $mibs MiB/s | $((rss / 1024)) MB |")
    echo "$label: $best s, $mibs MiB/s, $((rss / 1024)) MB" >&2
}
fresh_repo() {
    rm -rf "$W/repo" "$W/r.key" "$W/b.key"
    $LB --repo "$W/repo" init --restore-key-file "$W/r.key" --backup-key-file "$W/b.key" >/dev/null
}
size_of() { du -sb "$1" | cut -f1; }

measure "zstd -3 -T2 \| age (ingest)" "zstd -q -3 -T2 -c '$DATA' | age -r $RCPT > '$W/out.age'"
measure "lifeboat backup (ingest)" "$LB --repo '$W/repo' backup --backup-key-file '$W/b.key' --stdin-from-command \"cat '$DATA'\" --item s" fresh_repo
first=$(size_of "$W/repo")
if command -v restic >/dev/null; then
    measure "restic backup --stdin (ingest)" "restic -q -r '$W/restic' backup --stdin --stdin-filename s < '$DATA'" "rm -rf '$W/restic'; restic -q -r '$W/restic' init >/dev/null"
fi
measure "age -d \| zstd -d (restore)" "age -d -i '$W/age.key' '$W/out.age' | zstd -q -d -c > /dev/null"
measure "lifeboat restore --to - (restore)" "$LB --repo '$W/repo' restore --restore-key-file '$W/r.key' latest --item s --to - > /dev/null"
if command -v restic >/dev/null; then
    measure "restic dump (restore)" "restic -q -r '$W/restic' dump latest s > /dev/null"
fi
# Dedup: the same stream again, then 1% changed in place.
$LB --repo "$W/repo" backup --backup-key-file "$W/b.key" --stdin-from-command "cat '$DATA'" --item s >/dev/null
second=$(size_of "$W/repo")
$GEN change "$DATA" 0.01 99 >/dev/null
$LB --repo "$W/repo" backup --backup-key-file "$W/b.key" --stdin-from-command "cat '$DATA'" --item s >/dev/null
third=$(size_of "$W/repo")

echo
echo "Stream: $SIZE_MIB MiB (half random, half SQL-like text); $(nproc) cores; $(date -u +%Y-%m-%d)."
echo
echo "| job | time (best of 2) | throughput | peak RSS |"
echo "|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "| lifeboat dedup | bytes added | share of first |"
echo "|---|---|---|"
echo "| first backup | $first | 100% |"
awk "BEGIN{printf \"| identical rerun | %d | %.3f%% |\n\", $second - $first, 100 * ($second - $first) / $first}"
awk "BEGIN{printf \"| after 1%% changed in place (10 runs) | %d | %.2f%% |\n\", $third - $second, 100 * ($third - $second) / $first}"
