#!/usr/bin/env bash
# Many small files (Velero's case): time and peak RSS of cairn and restic, same run.
#
#   benches/files.sh [FILES] [DIRS]        (default: 2000000 files of 100 bytes in 2000 dirs)
#
# Generates the tree once (kept in $WORK, default /tmp/cairn-files), then for each tool:
# first backup, unchanged re-backup, restore of the snapshot, check; and for cairn also
# `ls` of the snapshot, `dump` of the whole snapshot as tar (to the output file), and a drill. Each tool has its
# own repository and cache, made fresh. Prints: tool op wall_s peak_kib.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-2000000}
dirs=${2:-2000}
work=${WORK:-/tmp/cairn-files}
mkdir -p "$work"
. benches/lib.sh
[ -x /usr/bin/time ] || apt_install time
need restic || apt_install restic
cairn_binary
export RESTIC_PASSWORD=files-bench
src=$work/src-$files-$dirs
if [ ! -f "$src.done" ]; then
  rm -rf "$src"
  python3 - "$src" "$files" "$dirs" <<'PY'
import os, sys
root, files, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per = files // dirs
for d in range(dirs):
    path = os.path.join(root, f"d{d:05}")
    os.makedirs(path)
    for f in range(per):
        with open(os.path.join(path, f"f{f:06}"), "wb") as out:
            out.write(os.urandom(50).hex().encode())
PY
  touch "$src.done"
fi

measure() {
  local tool=$1 op=$2
  shift 2
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
    echo "$tool $op failed:" >&2
    tail -5 "$work/err" >&2
    return 1
  }
  echo "$tool $op $(cat "$work/time")"
}

for tool in restic cairn; do
  repo=$work/repo-$tool
  cache=$work/cache-$tool
  rm -rf "$repo" "$cache" "$work/restore"
  sync
  if [ "$tool" = restic ]; then
    run=(restic -r "$repo" --cache-dir "$cache")
  else
    run=("$cairn" -r "$repo" --cache-dir "$cache")
  fi
  "${run[@]}" init >/dev/null 2>&1
  measure "$tool" backup "${run[@]}" backup -q "$src"
  measure "$tool" backup-unchanged "${run[@]}" backup -q "$src"
  measure "$tool" restore "${run[@]}" restore latest --target "$work/restore"
  rm -rf "$work/restore"
  measure "$tool" check "${run[@]}" check
  if [ "$tool" = cairn ]; then
    measure "$tool" ls "${run[@]}" ls latest
    measure "$tool" dump-all "${run[@]}" dump latest /
    measure "$tool" drill "${run[@]}" drill --scratch-dir "$work" --command "test -d .$src/d00000"
  fi
done
