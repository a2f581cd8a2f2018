#!/usr/bin/env python3
"""Restore one item from a lifeboat repository without lifeboat.

Uses only the `age` and `zstd` command-line tools and this script, written
from docs/FORMAT.md. For the day the lifeboat binary cannot be built.

    recover-by-hand.py REPO_DIR RESTORE_KEY_FILE ITEM_NAME OUT_FILE [SNAPSHOT_ID]

The restore key must be the plain (not passphrase-protected) age identity
file; decrypt a protected one first with `age -d -o plain.key restore.key`.
Secrets are written only to a private temporary directory, removed at exit.
"""
import glob
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile


def unseal(data, identity_file):
    """age, then zstd: the inverse of how every file and blob is stored."""
    compressed = subprocess.run(["age", "-d", "-i", identity_file], input=data,
                                capture_output=True, check=True).stdout
    return subprocess.run(["zstd", "-d", "-c"], input=compressed,
                          capture_output=True, check=True).stdout


def hmac256(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def authenticated(plain, key, label):
    """Format 2: strip and check the tag line (docs/FORMAT.md, "Authentication").
    Format 1 plaintexts (JSON, starting with "{") have none."""
    if plain[:1] == b"{":
        return plain
    tag, body = plain[:64], plain[65:]
    if plain[64:65] != b"\n" or not hmac.compare_digest(
            bytes.fromhex(tag.decode()), hmac256(key, label.encode() + b"\0" + body)):
        raise ValueError(f"a {label} file failed authentication")
    return body


def apply_patch(base, patch):
    """A delta blob: line ops against its base (docs/FORMAT.md, "Delta blobs")."""
    parts = base.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    assert patch.startswith(b"LBD1\n"), "not a patch"
    rest, out = patch[5:], []
    while rest:
        op, rest = rest.split(b"\n", 1)
        parts = op.split(b" ")
        if parts[0] == b"c":
            start, count = int(parts[1]), int(parts[2])
            out.extend(lines[start:start + count])
        elif parts[0] == b"l":
            n = int(parts[1])
            out.append(rest[:n])
            rest = rest[n:]
        else:
            raise ValueError(f"unknown patch op {op!r}")
    return b"".join(out)


def parse_time(text):
    """RFC 3339 UTC with 0 to 9 fraction digits, as a sortable tuple
    (comparing the text would put ".5Z" after ".123456789Z")."""
    head, _, frac = text.rstrip("Z").partition(".")
    return head, int((frac + "000000000")[:9])


def pack_header(path, meta_identity, file_key):
    """The header of a pack file: its last 8 bytes are u32le(length) and
    "LBP1"; the sealed header precedes them (docs/FORMAT.md, "Pack files")."""
    with open(path, "rb") as f:
        data = f.read()
    if data[-4:] != b"LBP1":
        raise ValueError(f"{path} is not a pack")
    length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - length
    plain = unseal(data[start:-8], meta_identity)
    if plain[:1] == b"{":  # written before format 2, trusted only through an index
        raise ValueError(f"{path}: an unindexed pack without a tag line")
    tag, body = plain[:64], plain[65:]
    message = b"pack-header\0" + hashlib.sha256(data[:start]).digest() + body
    if plain[64:65] != b"\n" or not hmac.compare_digest(
            bytes.fromhex(tag.decode()), hmac256(file_key, message)):
        raise ValueError(f"{path}: its header failed authentication")
    return json.loads(body)


def files(repo, folder):
    return sorted(p for p in glob.glob(os.path.join(repo, folder, "**", "*"), recursive=True)
                  if os.path.isfile(p) and not os.path.basename(p).startswith(".tmp-"))


def private_file(directory, name, text):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


def main():
    repo, restore_key, item_name, out_path = sys.argv[1:5]
    wanted = sys.argv[5] if len(sys.argv) > 5 else None
    tmp = tempfile.mkdtemp(prefix="lifeboat-recover-")  # mode 0700
    try:
        # 1. keys/: the keyring, encrypted to the restore key.
        # Format 2: the keyring's tag key comes from the restore key itself.
        identities = [l.strip() for l in open(restore_key) if l.startswith("AGE-SECRET-KEY-")]
        keyring = None
        for path in files(repo, "keys"):
            try:
                plain = unseal(open(path, "rb").read(), restore_key)
            except subprocess.CalledProcessError:
                continue
            for ident in identities:
                try:
                    keyring = json.loads(authenticated(
                        plain, hmac256(ident.encode(), b"lifeboat keyring-auth v2"), "keys"))
                    break
                except ValueError:
                    continue
            if keyring is not None:
                break
        if keyring is None:
            sys.exit("the restore key opens no authentic file in keys/")
        file_key = hmac256(bytes.fromhex(keyring["dedup_secret"]), b"lifeboat file-auth v2")

        def meta_file(path, label):
            return json.loads(authenticated(unseal(open(path, "rb").read(), meta), file_key, label))
        meta = private_file(tmp, "metadata.key", keyring["metadata_identity"])
        data = private_file(tmp, "data.key", "\n".join(keyring["data_identities"]))

        # 2. snapshots/: pick the newest (or the one asked for).
        snaps = []
        for path in files(repo, "snapshots"):
            snaps.append((os.path.basename(path), meta_file(path, "snapshots")))
        if wanted:
            snaps = [s for s in snaps if s[0].startswith(wanted)]
        if not snaps:
            sys.exit("no snapshot found")
        snap_id, snap = max(snaps, key=lambda s: (parse_time(s[1]["time"]), s[0]))

        # 3. index/: where each blob is; then the headers of packs no index
        # file names (an interrupted backup leaves such packs).
        where = {}
        indexed = set()
        for path in files(repo, "index"):
            for pack in meta_file(path, "index")["packs"]:
                indexed.add(pack["id"])
                for b in pack["blobs"]:
                    where.setdefault(b["id"], (pack["id"], b["offset"], b["length"], b.get("base")))
        for path in files(repo, "data"):
            name = os.path.basename(path)
            if name in indexed:
                continue
            for b in pack_header(path, meta, file_key)["blobs"]:
                where.setdefault(b["id"], (name, b["offset"], b["length"], b.get("base")))

        def blob(blob_id):
            pack, offset, length, base = where[blob_id]
            with open(os.path.join(repo, "data", pack[:2], pack), "rb") as f:
                f.seek(offset)
                stored = unseal(f.read(length), data)
            return apply_patch(blob(base), stored) if base else stored

        def join(blob_ids, size, sha256, what):
            content = b"".join(blob(b) for b in blob_ids)
            if len(content) != size or hashlib.sha256(content).hexdigest() != sha256:
                sys.exit(f"{what}: size or SHA-256 does not match")
            return content

        # 4. The manifest: JSON lines, one per item.
        m = snap["manifest"]
        manifest = join(m["blobs"], m["size"], m["sha256"], "manifest")
        items = [json.loads(line) for line in manifest.splitlines() if line]
        item = next((i for i in items if i["name"] == item_name), None)
        if item is None:
            sys.exit(f"snapshot {snap_id[:8]} has no item {item_name!r}")

        # Format 3: an item with an empty sha256 has it (and its meta) in
        # line `info.line` of info blob `info.blob`.
        if not item["sha256"] and item.get("info"):
            lines = [l for l in blob(item["info"]["blob"]).split(b"\n") if l]
            item.update(json.loads(lines[item["info"]["line"]]))

        # 5. The item: its blobs in order, checked against its SHA-256.
        with open(out_path, "wb") as out:
            out.write(join(item["blobs"], item["size"], item["sha256"], item_name))
        print(f"restored {item_name} ({item['size']} bytes, sha256 {item['sha256']}) "
              f"from snapshot {snap_id[:8]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
