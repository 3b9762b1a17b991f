#!/usr/bin/env bash
# Prune, side by side: cairn and restic on the same history, in one run on one machine.
#
#   benches/prune.sh [WORKDIR]
#
# History: $FILES files of $FILE_MIB MiB of random data (incompressible, so repository size
# is data size), backed up $SNAPSHOTS times; before each backup after the first, $CHURN
# files are replaced with new random content. Then `forget --keep-last $KEEP` and a timed
# `prune` (each tool's defaults). With the defaults: 40 × 24 MiB, 20 snapshots, 3 files
# replaced each time: a 2.3 GiB repository of which about 1.3 GiB becomes unused.
# Figures: wall seconds and peak RSS from /usr/bin/time; repository size from du.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/cairn-prune.XXXXXX)}
mkdir -p "$work"
FILES=${FILES:-40} FILE_MIB=${FILE_MIB:-24} SNAPSHOTS=${SNAPSHOTS:-20} CHURN=${CHURN:-3} KEEP=${KEEP:-5}
export RESTIC_PASSWORD=compare CAIRN_PASSWORD=compare

. benches/lib.sh
need restic || apt_install restic
[ -x /usr/bin/time ] || apt_install time

cargo build --release -q -p cairn-cli
cairn=$PWD/target/release/cairn
echo "# $(restic version | head -1); cairn $($cairn --version | awk '{print $2}'); $(nproc) cores" >&2

settle() { sync; sleep "${SETTLE_SECONDS:-5}"; }
repo_size() { du -sb "$1" | cut -f1; }
mib() { echo $(( $1 / 1048576 )); }

data=$work/data
rm -rf "$data" "$work/restic" "$work/cairn"
mkdir -p "$data"
for i in $(seq 1 "$FILES"); do head -c "$((FILE_MIB << 20))" /dev/urandom >"$data/f$i"; done
restic init -q -r "$work/restic"
"$cairn" -q -r "$work/cairn" init
for s in $(seq 1 "$SNAPSHOTS"); do
  if [ "$s" -gt 1 ]; then
    for c in $(seq 1 "$CHURN"); do
      i=$(( ((s - 2) * CHURN + c - 1) % FILES + 1 ))
      head -c "$((FILE_MIB << 20))" /dev/urandom >"$data/f$i"
    done
  fi
  restic -q -r "$work/restic" backup "$data" >/dev/null
  "$cairn" -q -r "$work/cairn" backup "$data" >/dev/null
done
restic -q -r "$work/restic" forget --keep-last "$KEEP" >/dev/null
"$cairn" -q -r "$work/cairn" forget --keep-last "$KEEP" >/dev/null

before_r=$(repo_size "$work/restic"); before_c=$(repo_size "$work/cairn")
settle
/usr/bin/time -f "%e %M" -o "$work/restic.time" restic -q -r "$work/restic" prune >/dev/null
settle
/usr/bin/time -f "%e %M" -o "$work/cairn.time" "$cairn" -q -r "$work/cairn" prune >/dev/null
after_r=$(repo_size "$work/restic"); after_c=$(repo_size "$work/cairn")
read -r secs_r rss_r <"$work/restic.time"
read -r secs_c rss_c <"$work/cairn.time"
"$cairn" -q -r "$work/cairn" check --read-data >/dev/null

printf '%-8s %10s %12s %14s %14s\n' tool prune_s peak_rss_MiB repo_before_MiB repo_after_MiB
printf '%-8s %10s %12s %14s %14s\n' restic "$secs_r" "$((rss_r / 1024))" "$(mib "$before_r")" "$(mib "$after_r")"
printf '%-8s %10s %12s %14s %14s\n' cairn "$secs_c" "$((rss_c / 1024))" "$(mib "$before_c")" "$(mib "$after_c")"
awk -v r="$secs_r" -v c="$secs_c" 'BEGIN { printf "cairn/restic prune time: %.2f\n", c / r }'
