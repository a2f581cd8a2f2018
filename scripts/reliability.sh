#!/usr/bin/env bash
# Long reliability campaigns (the fast versions run in scripts/test.sh):
#   scripts/reliability.sh [TRIALS] [SEED] [S3_TRIALS] [FUZZ_CASES]
#   defaults: 500 trials on a local store, seed 1, 200 on an S3 store,
#   200000 fuzz cases per parser
# Kills backups and prunes with SIGKILL at seeded random moments, checks
# after each that the next backup completes and, every 10 trials, that
# verify --read-data is clean and every snapshot restores byte-identical;
# then the fault, corruption, concurrency and secrets tests, and the
# fuzzing. Prints the figures for docs/RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-500}
SEED=${2:-1}
S3_TRIALS=${3:-200}
FUZZ_CASES=${4:-200000}
eval "$(scripts/dev-services.sh start)"
trap 'scripts/dev-services.sh stop' EXIT
export LIFEBOAT_TEST_S3_ENDPOINT
cargo build -q -p lifeboat-cli
LIFEBOAT_CRASH_TRIALS=$TRIALS LIFEBOAT_CRASH_S3_TRIALS=$S3_TRIALS LIFEBOAT_CRASH_SEED=$SEED \
  cargo test -q -p restore-tests --test crash_campaign -- --nocapture 2>&1 | grep -E "crash campaign|test result"
cargo test -q -p restore-tests --test crash_safety --test damage --test prune --test objects \
  --test s3_faults --test secrets \
  -- --test-threads 1 2>&1 | grep -E "test result"
scripts/fuzz.sh "$FUZZ_CASES"
