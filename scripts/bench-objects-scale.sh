#!/usr/bin/env bash
# scripts/bench.sh objects-scale [COUNT]: a bucket of COUNT small objects
# (default 1,000,000; 64 to 1087 bytes each) served by the synthetic S3
# server of the test support (`lifeboat-gen synth-s3`: every object is
# computed from its number, so a million keys cost no disk), listed with
# real paging. Side by side in one run:
#   rclone lsf -R --fast-list: listing only, the floor of any incremental
#   run (S3 lists 1000 keys a request, one request after the other);
#   lifeboat backup --source objects: first run, an unchanged run, and a
#   run after 1% of the objects changed.
# (rclone sync of a million objects into a directory is left out: it
# writes a million files, which is not what is compared; `scripts/bench.sh
# objects` has it side by side on 5000.)
# Wall time, peak RSS, S3 requests (counted by the server), bytes the run
# added to the repository and the manifest's size. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-1000000}

command -v rclone >/dev/null || { s=""; [ "$(id -u)" -eq 0 ] || s=sudo; $s apt-get install -y -qq rclone >/dev/null 2>&1 || true; }
cargo build -q --release -p lifeboat-cli -p lifeboat-testkit
LB=$PWD/target/release/lifeboat
GEN=$PWD/target/release/lifeboat-gen
W=$(mktemp -d /var/tmp/lifeboat-bench.XXXXXX)
B=synthetic
PORT=$((20000 + RANDOM % 20000))
$GEN synth-s3 $PORT $B "$COUNT" 10 >"$W/synth.url" &
SYNTH=$!
trap 'kill $SYNTH 2>/dev/null; rm -rf "$W"' EXIT
EP=http://127.0.0.1:$PORT
for _ in $(seq 50); do curl -sf "$EP/_synth/counts" >/dev/null && break; sleep 0.1; done
unset AWS_CA_BUNDLE
export RCLONE_CONFIG_M_TYPE=s3 RCLONE_CONFIG_M_PROVIDER=Other RCLONE_CONFIG_M_ENDPOINT=$EP \
    RCLONE_CONFIG_M_ACCESS_KEY_ID=testing RCLONE_CONFIG_M_SECRET_ACCESS_KEY=testing-secret \
    RCLONE_CONFIG_M_FORCE_PATH_STYLE=true RCLONE_CONFIG_M_LIST_VERSION=2
export AWS_SECRET_ACCESS_KEY=testing-secret
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

counts() { curl -sf "$EP/_synth/counts" | tr -d '{}"' ; }
results=()
measure() { # LABEL CMD
    local before after
    before=$(counts)
    /usr/bin/time -f "%e %M" -o "$W/t" bash -c "$2" >"$W/out" 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
    after=$(counts)
    read -r t m <"$W/t"
    local req
    req=$(python3 - "$before" "$after" <<'PY'
import sys
b = dict(kv.split(":") for kv in sys.argv[1].split(","))
a = dict(kv.split(":") for kv in sys.argv[2].split(","))
print(" ".join(f"{k} {int(a[k]) - int(b[k])}" for k in ("lists", "gets", "heads")))
PY
)
    results+=("| $1 | $t s | $((m / 1024)) MB | $req |")
    echo "$1: $t s, $((m / 1024)) MB, $req" >&2
}
repo_size() { du -sb "$W/repo" | cut -f1; }
manifest_size() { # of the newest snapshot, plaintext
    $LB --repo "$W/repo" --restore-key-file "$W/r.key" snapshots --json \
        | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s[-1]["manifest_size"])'
}
added=()
night() { # LABEL
    local s0
    s0=$(repo_size)
    measure "lifeboat backup --source objects ($1)" "$LB --config '$W/lb.toml' backup --source objects"
    local grew=$(( $(repo_size) - s0 )) man
    man=$(manifest_size)
    added+=("| $1 | $((grew >> 10)) KiB | $((man >> 10)) KiB | $(awk "BEGIN{printf \"%.2f\", 100 * $grew / $man}")% |")
}

measure "rclone lsf -R --fast-list (listing only)" "rclone lsf -R --fast-list m:$B | wc -l"
night first
night unchanged
curl -sf -X POST "$EP/_synth/next" >/dev/null
measure "rclone lsf -R --fast-list (listing only)" "rclone lsf -R --fast-list m:$B | wc -l"
night "after 1% changed"

echo
echo "$COUNT objects (64 to 1087 bytes), synthetic S3 server on 127.0.0.1, $(nproc) cores"
echo
echo "| job | wall | peak RSS | S3 requests |"
echo "|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "| lifeboat run | added to the repository | manifest (plaintext) | added / manifest |"
echo "|---|---|---|---|"
printf '%s\n' "${added[@]}"
