#!/usr/bin/env bash
# Importing a restic repository: `cairn copy --from-repo` of a restic repository against
# restic's own `copy` between two restic repositories, same source, same run.
#
#   benches/import.sh [TREE]        (default /usr/share)
#
# restic backs TREE up once (format 2); then each tool copies that snapshot into a fresh
# repository of its own. Prints: tool op wall_s peak_kib.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=${1:-/usr/share}
work=${WORK:-/tmp/cairn-import}
. benches/lib.sh
[ -x /usr/bin/time ] || apt_install time
need restic || apt_install restic
cairn_binary
rm -rf "$work"; mkdir -p "$work"
export RESTIC_PASSWORD=import-bench RESTIC_FROM_PASSWORD=import-bench CAIRN_PASSWORD=import-bench
measure() {
  local tool=$1 op=$2
  shift 2
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
    echo "$tool $op failed:" >&2; tail -5 "$work/err" >&2; return 1; }
  echo "$tool $op $(cat "$work/time")"
}
restic -r "$work/source" init -q
measure restic backup-source restic -r "$work/source" --cache-dir "$work/cache-src" backup -q "$tree"
restic -r "$work/restic-copy" init -q
sync
measure restic copy restic -r "$work/restic-copy" --cache-dir "$work/cache-restic" copy \
  --from-repo "$work/source" --from-password-file <(echo import-bench)
"$cairn" -r "$work/cairn" --cache-dir "$work/cache-cairn" init -q
sync
measure cairn import "$cairn" -r "$work/cairn" --cache-dir "$work/cache-cairn" copy --from-repo "$work/source"
measure cairn import-again "$cairn" -r "$work/cairn" --cache-dir "$work/cache-cairn" copy --from-repo "$work/source"
du -sk "$work/restic-copy" "$work/cairn" | sed 's/^/size_kib /'
