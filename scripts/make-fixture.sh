#!/usr/bin/env bash
# Write a fixture repository with a given lifeboat binary, so that a later
# format can prove it still reads (and upgrades) what that binary wrote:
#
#   scripts/make-fixture.sh BINARY OUT_DIR DB_NAME
#
# e.g. `scripts/make-fixture.sh /tmp/lifeboat-v2 restore-tests/fixtures/repo-v2
# lb_fixture_v2` with the last binary that writes format 2. It needs MariaDB at
# 127.0.0.1:3306 (root, no password), git, and writes, under OUT_DIR:
#   repo/            the repository (init with restore.key, key add second.key)
#   restore.key, second.key, backup.key   test keys of this fixture only
#   stream.sha256    the item `stream.txt` of the first snapshot
#   objects.sha256   the files of the objects directory at the second nightly
#   git-refs.txt     the refs of `src-repo` at the second nightly
# Snapshots: `first` (a stream), then two `nightly` ones of MySQL (DB_NAME:
# tables patients and visits, view v_visits), objects (a directory; letter.txt
# is added before the second) and git (src-repo).
set -euo pipefail
bin=$(realpath "$1")
out=$(realpath -m "$2")
db=$3
[ ! -e "$out" ] || { echo "$out exists: remove it first" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"; mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS \`$db\`"' EXIT
mkdir -p "$out"

mariadb -h127.0.0.1 -uroot <<SQL
DROP DATABASE IF EXISTS \`$db\`;
CREATE DATABASE \`$db\` CHARACTER SET utf8mb4;
USE \`$db\`;
CREATE TABLE patients (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, born DATE);
CREATE TABLE visits (id INT PRIMARY KEY, patient_id INT NOT NULL, note TEXT,
  FOREIGN KEY (patient_id) REFERENCES patients(id));
INSERT INTO patients VALUES (1,'Ada','1980-01-02'),(2,'Ben',NULL),(3,'Chi','1999-12-31');
INSERT INTO visits VALUES (1,1,'check-up'),(2,3,'filling: ''upper'' left');
CREATE VIEW v_visits AS SELECT p.name, v.note FROM visits v JOIN patients p ON p.id = v.patient_id;
SQL

mkdir -p "$work/objects/scans/2026" "$work/git"
printf 'scan one\n' > "$work/objects/scans/2026/one.txt"
head -c 30000 /dev/urandom > "$work/objects/scans/2026/xray.bin"
printf 'private\n' > "$work/objects/private.txt"
chmod 0640 "$work/objects/private.txt"

git -C "$work/git" init -q -b main src-repo
git -C "$work/git/src-repo" -c user.name=f -c user.email=f@x commit -q --allow-empty -m one
git -C "$work/git/src-repo" tag v1
git -C "$work/git/src-repo" checkout -q -b topic
git -C "$work/git/src-repo" -c user.name=f -c user.email=f@x commit -q --allow-empty -m two
git -C "$work/git/src-repo" checkout -q main

cat > "$work/lifeboat.toml" <<EOF
[repository]
url = "$out/repo"
backup_key_file = "$out/backup.key"

[mysql]
url = "mysql://root@127.0.0.1:3306/$db"

[objects]
path = "$work/objects"

[[git]]
url = "$work/git/src-repo"
name = "src-repo"
EOF

export LIFEBOAT_CACHE_DIR="$work/cache"
lb() { "$bin" --config "$work/lifeboat.toml" "$@"; }
lb init --restore-key-file "$out/restore.key"
lb key add --restore-key-file "$out/restore.key" --new-key-file "$out/second.key"
seq 1 40000 | sed 's/$/ lifeboat fixture/' > "$work/stream.txt"
(cd "$work" && sha256sum stream.txt) > "$out/stream.sha256"
lb backup --stdin-from-command "cat $work/stream.txt" --item stream.txt --tag first
lb backup --tag nightly
printf 'a letter\n' > "$work/objects/letter.txt"
git -C "$work/git/src-repo" -c user.name=f -c user.email=f@x commit -q --allow-empty -m three
lb backup --tag nightly

(cd "$work/objects" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) > "$out/objects.sha256"
git -C "$work/git/src-repo" for-each-ref --format='%(objectname) %(refname)' > "$out/git-refs.txt"
echo "wrote $out with $("$bin" --version)"
