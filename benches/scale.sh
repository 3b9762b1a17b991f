#!/usr/bin/env bash
# Peak memory and time of each operation against repositories of N million blobs.
#
#   benches/scale.sh [MILLIONS...]        (default: 1 5 20)
#
# For each N, builds (once, kept in $WORK, default /tmp/cairn-scale) a synthetic repository
# with benches' scale_repo: N M distinct data blobs of 48-111 bytes, all reachable from one
# snapshot ("big"), plus a one-file snapshot ("small"). Then, with a fresh local cache,
# measures: the first backup of 64 MiB of new files (it builds the cache's index tables), a
# second backup of new files, an unchanged re-backup, restore of "small", check,
# check --read-data-subset 1%, copy of "small" to a new repository, and forget --prune of
# this run's backups (which leaves the repository as it was built, for the next run).
# Prints: millions op wall_s peak_kib.
#
# restic is not run here: it cannot be made to hold tens of millions of blobs in a
# reasonable time (it has no library to write them with, and its chunks are at least
# 512 KiB, so 20 M blobs would be 10 TB of data or 20 M files); docs/performance.md
# compares it on 2 M files instead.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-/tmp/cairn-scale}
mkdir -p "$work"
. benches/lib.sh
[ -x /usr/bin/time ] || apt_install time
cairn_binary
cargo build --release -q -p cairn-benches --bin scale_repo
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-scale-bench}

measure() {
  local m=$1 op=$2
  shift 2
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>&1 || {
    echo "$op failed:" >&2
    tail -5 "$work/out" >&2
    return 1
  }
  echo "$m $op $(cat "$work/time")"
}

new_files() {
  rm -rf "$1"
  mkdir -p "$1"
  for i in $(seq 1 16); do head -c $((4 << 20)) /dev/urandom >"$1/f$i"; done
}

for m in "${@:-1 5 20}"; do
  repo=$work/repo-$m
  if [ ! -f "$repo/config" ]; then
    rm -rf "$repo"
    /usr/bin/time -f "# built $m M blobs in %e s, peak %M KiB" target/release/scale_repo "$repo" "$m"
  fi
  echo "# $m M blobs: $(du -sh "$repo" | cut -f1) in $(find "$repo/index" -type f | wc -l) index files" >&2
  cache=$work/cache-$m
  rm -rf "$cache" "$work/restore" "$work/copy"
  run=("$cairn" -r "$repo" --cache-dir "$cache")
  new_files "$work/new1"
  measure "$m" backup-new-cold "${run[@]}" backup -q --tag run "$work/new1"
  new_files "$work/new2"
  measure "$m" backup-new "${run[@]}" backup -q --tag run "$work/new2"
  measure "$m" backup-unchanged "${run[@]}" backup -q --tag run "$work/new2"
  if [ "$("${run[@]}" snapshots --json --tag small)" = "[]" ]; then
    mkdir -p "$work/small" && echo small >"$work/small/small.txt"
    "${run[@]}" backup -q --tag small "$work/small"
  fi
  small=$("${run[@]}" snapshots --json --tag small | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  [ -n "$small" ]
  measure "$m" restore-small "${run[@]}" restore "$small" --target "$work/restore"
  measure "$m" check "${run[@]}" check
  measure "$m" check-subset-1% "${run[@]}" check --read-data-subset 1%
  "$cairn" -r "$work/copy" init >/dev/null 2>&1
  measure "$m" copy-small "$cairn" -r "$work/copy" --cache-dir "$cache-copy" copy \
    --from-repo "$repo" --from-password-file <(echo "$RESTIC_PASSWORD") "$small"
  ids=$("${run[@]}" snapshots --json --tag run | python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(sys.stdin)))')
  # shellcheck disable=SC2086 # one argument per snapshot id
  measure "$m" forget-prune "${run[@]}" forget --prune $ids
done
