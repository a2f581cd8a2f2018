#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts what the
# tests need (scripts/dev-services.sh), checks formatting and lints, builds
# the binary the end-to-end tests run, and runs every test.
# MariaDB is expected at 127.0.0.1:3306 (root, no password) for the MySQL
# tests; everything else is started here and stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/dev-services.sh start)"
trap 'scripts/dev-services.sh stop' EXIT
export LIFEBOAT_TEST_S3_ENDPOINT
# The real .env readers the render dialect test checks against.
python3 -c "import dotenv" 2>/dev/null || pip3 install -q 'python-dotenv==1.2.2'
# The real Prometheus text parser the status --prometheus test checks against.
python3 -c "import prometheus_client" 2>/dev/null || pip3 install -q 'prometheus_client==0.21.1'
[ -f target/js-readers/node_modules/dotenv/package.json ] ||
    npm install --prefix target/js-readers --silent --no-audit --no-fund dotenv@16.6.1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build"
cargo build --workspace --quiet
echo "== tests"
cargo test --workspace --quiet -- --test-threads 2 "$@"
