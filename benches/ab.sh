#!/usr/bin/env bash
# Alternating A/B of two cairn binaries on one repository: restore into tmpfs (so disk
# writeback from the previous run does not decide the time) and an unchanged re-backup.
#
#   benches/ab.sh OLD_BIN NEW_BIN REPOSITORY SOURCE_DIR [ROUNDS]
#
# The repository must already hold a backup of SOURCE_DIR (e.g. the one benches/compare.sh
# leaves in WORKDIR/cairn-tree; its password is "compare"). Prints one line per run:
# "phase binary wall_s user_s sys_s peak_kib", then the median wall time per phase and binary.
set -euo pipefail
old=$1 new=$2 repo=$3 source=$4 rounds=${5:-5}
export CAIRN_PASSWORD=${CAIRN_PASSWORD:-compare}
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }
target=/dev/shm/cairn-ab-restore
out=$(mktemp)
trap 'rm -rf "$target" "$out"' EXIT
for _ in $(seq "$rounds"); do
  for v in old new; do
    bin=$old; [ "$v" = new ] && bin=$new
    rm -rf "$target"; sleep 1
    /usr/bin/time -f "restore $v %e %U %S %M" -a -o "$out" "$bin" -q -r "$repo" restore latest --target "$target" >/dev/null
    /usr/bin/time -f "unchanged $v %e %U %S %M" -a -o "$out" "$bin" -q -r "$repo" backup "$source" >/dev/null
  done
done
cat "$out"
echo
for phase in restore unchanged; do
  for v in old new; do
    median=$(awk -v p="$phase" -v b="$v" '$1 == p && $2 == b { print $3 }' "$out" | sort -n |
      awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }')
    echo "$phase $v median ${median}s"
  done
done
