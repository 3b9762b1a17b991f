#!/usr/bin/env bash
# A changed sparse volume image re-backed up, cairn against restic, on a local repository.
#
#   benches/sparse.sh [WORKDIR]
#
# Builds an image of SIZE_MB (default 1300) apparent size with DATA_MB (default 700) of
# random data in extents of EXTENT_MB (default 16, as file systems allocate) spread over it
# and holes between, backs it up with each
# tool, rewrites CHANGED_MB (default 20) of its data extents, and times the re-backup (with
# the first snapshot as parent: the image's mtime changed, so every tool reads it again).
# Prints: tool phase wall_s peak_kib. CAIRN_BIN picks a binary; installs restic and GNU
# time when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/cairn-sparse.XXXXXX)}
size_mb=${SIZE_MB:-1300}
data_mb=${DATA_MB:-700}
changed_mb=${CHANGED_MB:-20}
extent_mb=${EXTENT_MB:-16}
mkdir -p "$work"
. benches/lib.sh
need restic || apt_install restic
[ -x /usr/bin/time ] || apt_install time
cairn_binary

src=$work/src
rm -rf "$src" "$work/restic" "$work/cairn"
mkdir -p "$src"
# Data extents at evenly spread MiB offsets, the same layout every run (seeded).
python3 - "$src/volume.img" "$size_mb" "$data_mb" "$extent_mb" <<'PY'
import os, random, sys
path, size_mb, data_mb, extent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(1)
with open(path, "wb") as f:
    f.truncate(size_mb << 20)
    for slot in sorted(rng.sample(range(size_mb // extent), data_mb // extent)):
        f.seek(slot * extent << 20)
        f.write(rng.randbytes(extent << 20))
PY
echo "# image: $(du -h --apparent-size "$src/volume.img" | cut -f1) apparent, $(du -h "$src/volume.img" | cut -f1) allocated; $(restic version | head -1)" >&2

export RESTIC_PASSWORD=sparse CAIRN_PASSWORD=sparse
restic -r "$work/restic" init -q
"$cairn" -r "$work/cairn" init >/dev/null

printf '%-8s %-10s %8s %10s\n' tool phase wall_s peak_kib
measure() {
  local tool=$1 phase=$2
  shift 2
  sync
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>&1
  read -r wall kib <"$work/time"
  printf '%-8s %-10s %8s %10s\n' "$tool" "$phase" "$wall" "$kib"
}
measure restic first restic -r "$work/restic" backup -q "$src"
measure cairn first "$cairn" -r "$work/cairn" backup -q "$src"

# Rewrite some data extents (random bytes), keeping the holes where they are.
python3 - "$src/volume.img" "$size_mb" "$data_mb" "$extent_mb" "$changed_mb" <<'PY'
import random, sys
path, size_mb, data_mb, extent, changed_mb = (sys.argv[1], *map(int, sys.argv[2:]))
rng = random.Random(1)
slots = sorted(rng.sample(range(size_mb // extent), data_mb // extent))
change = random.Random(2)
with open(path, "r+b") as f:
    # 1 MiB rewrites inside data extents: a database's scattered page writes.
    for _ in range(changed_mb):
        slot = change.choice(slots)
        f.seek((slot * extent + change.randrange(extent)) << 20)
        f.write(change.randbytes(1 << 20))
PY
measure restic changed restic -r "$work/restic" backup -q "$src"
measure cairn changed "$cairn" -r "$work/cairn" backup -q "$src"
