#!/usr/bin/env bash
# scripts/bench.sh objects [COUNT] [MAX_MIB]: a bucket of generated documents
# in the local S3 server (moto), mirrored side by side in one run by
#   rclone sync (into a directory), rclone sync + restic backup of it, lifeboat;
# first run, then a second run after 1% of the objects changed. Wall time
# and peak RSS. Prints a Markdown table for docs/BENCHMARKS.md. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-5000}
MAX_MIB=${2:-50}

for tool in rclone restic; do
    command -v $tool >/dev/null || { s=""; [ "$(id -u)" -eq 0 ] || s=sudo; $s apt-get install -y -qq $tool >/dev/null 2>&1 || true; }
done
cargo build -q --release -p lifeboat-cli -p lifeboat-testkit
LB=$PWD/target/release/lifeboat
GEN=$PWD/target/release/lifeboat-gen
W=$(mktemp -d /var/tmp/lifeboat-bench.XXXXXX)
eval "$(scripts/dev-services.sh start)"
trap 'scripts/dev-services.sh stop; rm -rf "$W"' EXIT
EP=$LIFEBOAT_TEST_S3_ENDPOINT
B=bench-uploads
curl -s -X PUT "$EP/$B" >/dev/null
$GEN bucket "$EP" $B "$COUNT" 7 $((MAX_MIB << 20)) >&2
# rclone refuses AWS_CA_BUNDLE (set system-wide on some hosts) for its S3 transport.
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing-secret RESTIC_PASSWORD=bench
export RCLONE_CONFIG_M_TYPE=s3 RCLONE_CONFIG_M_PROVIDER=Other RCLONE_CONFIG_M_ENDPOINT=$EP \
    RCLONE_CONFIG_M_ACCESS_KEY_ID=testing RCLONE_CONFIG_M_SECRET_ACCESS_KEY=testing-secret \
    RCLONE_CONFIG_M_FORCE_PATH_STYLE=true
cat > "$W/lb.toml" <<TOML
[repository]
url = "$W/repo"
backup_key_file = "$W/b.key"
[objects]
endpoint = "$EP"
bucket = "$B"
access_key_id = "testing"
secret_access_key = "\${AWS_SECRET_ACCESS_KEY}"
TOML
$LB --repo "$W/repo" init --restore-key-file "$W/r.key" --backup-key-file "$W/b.key" >/dev/null
restic init -q -r "$W/restic"

results=()
measure() { # LABEL CMD
    /usr/bin/time -f "%e %M" -o "$W/t" bash -c "$2" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
    read -r t m <"$W/t"
    results+=("| $1 | $t s | $((m / 1024)) MB |")
    echo "$1: $t s, $((m / 1024)) MB" >&2
}
run_all() { # SUFFIX
    sync
    measure "rclone sync -> dir ($1)" "rclone sync --transfers 8 m:$B '$W/mirror'"
    measure "  + restic backup of the dir ($1)" "restic backup -q -r '$W/restic' '$W/mirror'"
    measure "lifeboat backup --source objects ($1)" "$LB --config '$W/lb.toml' backup --source objects"
}
run_all first
first_lb=$(du -sb "$W/repo" | cut -f1); first_restic=$(du -sb "$W/restic" | cut -f1)
$GEN bucket "$EP" $B "$COUNT" 7 $((MAX_MIB << 20)) 1 >&2
run_all "after 1% changed"
second_lb=$(( $(du -sb "$W/repo" | cut -f1) - first_lb ))
second_restic=$(( $(du -sb "$W/restic" | cut -f1) - first_restic ))

total=$(du -sb "$W/mirror" | cut -f1)
echo
echo "$COUNT objects, $((total >> 20)) MiB, up to $MAX_MIB MiB each, moto on 127.0.0.1"
echo
echo "| job | wall | peak RSS |"
echo "|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "Second run added: lifeboat $((second_lb >> 10)) KiB of $((first_lb >> 20)) MiB; restic $((second_restic >> 10)) KiB of $((first_restic >> 20)) MiB"
