#!/usr/bin/env bash
# Fuzz every parser of what lifeboat reads (stored data, server replies,
# config files). Two modes:
#
#   scripts/fuzz.sh [CASES]
#       proptest: CASES generated inputs per target (default 50000; the test
#       suite runs 256). Targets are the fuzz_* tests of lifeboat-store and
#       lifeboat-mysql; a failing input is saved under proptest-regressions/
#       next to its target and replayed first on every later run.
#   scripts/fuzz.sh libfuzzer [SECONDS] [TARGET ...]
#       coverage-guided: cargo-fuzz (libFuzzer, AddressSanitizer) runs each
#       target of fuzz/ for SECONDS (default 60), two at a time. The corpus of
#       each grows in target/fuzz-corpus/TARGET (seeded from fuzz/corpus/ and
#       kept between runs); crashes land in fuzz/artifacts/TARGET/ (make each
#       a regression test). A summary (executions, coverage, corpus, crashes)
#       is appended to target/fuzz-report.md.
#
# cargo-fuzz runs on the stable toolchain with RUSTC_BOOTSTRAP=1 (it passes
# -Z flags for the sanitizer and coverage instrumentation).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != libfuzzer ]; then
    export LIFEBOAT_FUZZ_CASES="${1:-50000}"
    echo "fuzz: ${LIFEBOAT_FUZZ_CASES} cases per target"
    for crate in lifeboat-store lifeboat-mysql; do
        start=$(date +%s)
        cargo test --quiet -p "$crate" --lib fuzz -- --test-threads 2
        echo "fuzz: $crate done in $(( $(date +%s) - start )) s"
    done
    exit 0
fi
shift
SECONDS_PER=${1:-60}
[ $# -gt 0 ] && shift
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
ALL=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^lifeboat-fuzz$')
TARGETS=${*:-$ALL}

# Seeds: fuzz/corpus/DIR for each target, plus what is made fresh (no key
# is committed, not even a throwaway one).
seed_dir() {
    case $1 in
        key_file|config_file) echo "" ;;
        index) echo index ;; snapshot) echo snapshot ;; manifest) echo manifest ;;
        lock) echo lock ;; delta) echo delta ;; sealed) echo sealed ;;
        pack|pack_trailer) echo pack ;; row_line|lines) echo row ;;
        schema) echo schema ;; sql_text) echo sql ;; cache_file) echo cache ;; row_hash_delta) echo rowdelta ;;
        binlog_file) echo binlog ;;
        wire) echo wire ;; dotenv) echo dotenv ;; config) echo config ;;
    esac
}
RUSTC_BOOTSTRAP=1 cargo fuzz build -O
mkdir -p target/fuzz-corpus
for t in $TARGETS; do
    c=target/fuzz-corpus/$t
    mkdir -p "$c"
    d=$(seed_dir "$t")
    [ -n "$d" ] && cp -n fuzz/corpus/"$d"/* "$c"/ 2>/dev/null || true
done
if [[ " $TARGETS " == *" key_file "* ]]; then
    k=$(mktemp -d)
    cargo build -q -p lifeboat-cli
    target/debug/lifeboat --repo "$k/repo" init --restore-key-file "$k/r.key" --backup-key-file "$k/b.key" >/dev/null
    cp "$k/r.key" target/fuzz-corpus/key_file/restore.key
    cp "$k/b.key" target/fuzz-corpus/key_file/backup.key
    rm -rf "$k"
fi
[[ " $TARGETS " == *" config_file "* ]] && cp -n config/lifeboat.example.toml target/fuzz-corpus/config_file/ || true

run_one() {
    t=$1
    log=target/fuzz-corpus/$t.log
    cargo fuzz run -O "$t" "target/fuzz-corpus/$t" -- \
        -max_total_time="$SECONDS_PER" -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1 || echo "CRASH in $t (see $log and fuzz/artifacts/$t/)"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(ls "target/fuzz-corpus/$t" | wc -l)
    crashes=$(ls "fuzz/artifacts/$t" 2>/dev/null | wc -l)
    echo "| $t | $SECONDS_PER s | ${execs:-?} | ${cov:-?} | $corp | $crashes |"
}
export -f run_one
export SECONDS_PER
{
    echo
    echo "libFuzzer run $(date -u +%Y-%m-%dT%H:%MZ), $SECONDS_PER s per target:"
    echo
    echo "| target | time | executions | cov | corpus | crashes |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' $TARGETS | xargs -P 2 -I{} bash -c 'run_one {}'
} | tee -a target/fuzz-report.md
