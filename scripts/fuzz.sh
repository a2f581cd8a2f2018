#!/usr/bin/env bash
# Fuzz every parser of stored data for a fixed budget: CASES generated
# inputs per target (default 50000; the test suite runs 256). Targets are
# proptest tests named fuzz_* (crates/lifeboat-store/src/fuzz.rs,
# crates/lifeboat-mysql/src/fuzz.rs); seeds are in fuzz/corpus/, and a
# failing input is saved under proptest-regressions/ next to its target
# and replayed first on every later run (commit it with the fix).
#   scripts/fuzz.sh [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."
export LIFEBOAT_FUZZ_CASES="${1:-50000}"
echo "fuzz: ${LIFEBOAT_FUZZ_CASES} cases per target"
for crate in lifeboat-store lifeboat-mysql; do
    start=$(date +%s)
    cargo test --quiet -p "$crate" --lib fuzz -- --test-threads 2
    echo "fuzz: $crate done in $(( $(date +%s) - start )) s"
done
