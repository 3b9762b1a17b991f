#!/usr/bin/env bash
# Side-by-side comparison of cairn and restic on the same data, in one run on one machine.
#
#   benches/compare.sh [WORKDIR]
#
# CAIRN_BIN=/path/to/cairn measures that binary instead of building this tree (to compare
# two versions: run once per binary, each against restic in the same run).
#
# Datasets (each skipped with a note if it cannot be prepared here):
#   dump   a pg_dump of a pgbench database (scale $PGBENCH_SCALE) plus a table of random
#          filler, backed up as a stream (stdin), as a database CronJob would
#   tree   the /usr/share tree (many small files)
#   image  a sparse ext4 image (mke2fs -d /usr/share/doc, 2 GiB apparent size)
# For each: initial backup, unchanged re-backup, backup after a small change, restore.
# Figures: wall seconds and peak RSS from /usr/bin/time, repository size from du.
# Installs restic, GNU time, e2fsprogs and PostgreSQL from apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/cairn-compare.XXXXXX)}
mkdir -p "$work"
PGBENCH_SCALE=${PGBENCH_SCALE:-20}
export RESTIC_PASSWORD=compare CAIRN_PASSWORD=compare

. benches/lib.sh
need restic || apt_install restic
[ -x /usr/bin/time ] || apt_install time
need mke2fs || apt_install e2fsprogs

cairn_binary
echo "# $(restic version | head -1); cairn $($cairn --version | awk '{print $2}'); $(nproc) cores" >&2

# Dirty page cache from the previous step (a restore writes hundreds of MB; deleting a
# restored tree queues much more work) slows whichever command comes next several-fold, so
# every measured command starts from a synced, settled disk.
settle() { sync; sleep "${SETTLE_SECONDS:-5}"; }

# measure NAME CMD...: appends "NAME seconds peak_kib" to $work/times
measure() {
  local name=$1; shift
  settle
  /usr/bin/time -f "%e %M" -o "$work/time.tmp" "$@" >/dev/null 2>"$work/err.tmp" || { echo "FAILED: $name" >&2; cat "$work/err.tmp" >&2; return 1; }
  echo "$name $(cat "$work/time.tmp")" >>"$work/times"
}
measure_stdin() {
  local name=$1 input=$2; shift 2
  settle
  /usr/bin/time -f "%e %M" -o "$work/time.tmp" "$@" <"$input" >/dev/null 2>"$work/err.tmp" || { echo "FAILED: $name" >&2; cat "$work/err.tmp" >&2; return 1; }
  echo "$name $(cat "$work/time.tmp")" >>"$work/times"
}
repo_size() { du -sb "$1" | cut -f1; }

prepare_dump() {
  local out=$work/dump.sql
  [ -s "$out" ] && return 0
  if ! need pg_ctlcluster && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt_install postgresql || return 1
  fi
  local bin; bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | tail -1)")
  local data=$work/pgdata sock=$work/pgsock
  rm -rf "$data"; mkdir -p "$sock"; chown -R postgres "$work" 2>/dev/null || true
  runuser -u postgres -- "$bin/initdb" -D "$data" -A trust >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -o "-k $sock -c listen_addresses=''" -w start >/dev/null
  runuser -u postgres -- "$bin/createdb" -h "$sock" bench
  runuser -u postgres -- "$bin/pgbench" -h "$sock" -i -q -s "$PGBENCH_SCALE" bench >/dev/null 2>&1
  runuser -u postgres -- "$bin/psql" -h "$sock" -q bench -c \
    "create table filler as select g as id, md5(random()::text) || md5(random()::text) as a, repeat(md5(random()::text), 4) as b from generate_series(1, 400000) g" >/dev/null
  runuser -u postgres -- "$bin/pg_dump" -h "$sock" bench >"$out"
  # The "small change" dump: the same database after a few updates.
  runuser -u postgres -- "$bin/psql" -h "$sock" -q bench -c \
    "update pgbench_accounts set abalance = abalance + 1 where aid % 1000 = 0" >/dev/null
  runuser -u postgres -- "$bin/pg_dump" -h "$sock" bench >"$work/dump2.sql"
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null
}

prepare_image() {
  local img=$work/image.ext4
  [ -s "$img" ] && return 0
  mke2fs -q -t ext4 -d /usr/share/doc "$img" 2G
}

run_stream() {  # dataset stdin-file changed-file
  local ds=$1 input=$2 changed=$3
  local rr=$work/restic-$ds cr=$work/cairn-$ds
  rm -rf "$rr" "$cr" "$work/restore-"*
  restic -q init -r "$rr" >/dev/null
  $cairn -q -r "$cr" init
  measure_stdin "$ds restic initial" "$input" restic -q -r "$rr" backup --stdin --stdin-filename data
  measure_stdin "$ds cairn initial" "$input" $cairn -q -r "$cr" backup --stdin --stdin-filename data
  measure_stdin "$ds restic unchanged" "$input" restic -q -r "$rr" backup --stdin --stdin-filename data
  measure_stdin "$ds cairn unchanged" "$input" $cairn -q -r "$cr" backup --stdin --stdin-filename data
  measure_stdin "$ds restic changed" "$changed" restic -q -r "$rr" backup --stdin --stdin-filename data
  measure_stdin "$ds cairn changed" "$changed" $cairn -q -r "$cr" backup --stdin --stdin-filename data
  measure "$ds restic restore" restic -q -r "$rr" restore latest --target "$work/restore-restic"
  measure "$ds cairn restore" $cairn -q -r "$cr" restore latest --target "$work/restore-cairn"
  cmp "$changed" "$work/restore-cairn/data"
  echo "$ds restic repo $(repo_size "$rr")" >>"$work/sizes"
  echo "$ds cairn repo $(repo_size "$cr")" >>"$work/sizes"
}

run_tree() {  # dataset source-path change-command
  local ds=$1 src=$2 change=$3
  local rr=$work/restic-$ds cr=$work/cairn-$ds
  rm -rf "$rr" "$cr" "$work/restore-"*
  restic -q init -r "$rr" >/dev/null
  $cairn -q -r "$cr" init
  measure "$ds restic initial" restic -q -r "$rr" backup "$src"
  measure "$ds cairn initial" $cairn -q -r "$cr" backup "$src"
  measure "$ds restic unchanged" restic -q -r "$rr" backup "$src"
  measure "$ds cairn unchanged" $cairn -q -r "$cr" backup "$src"
  eval "$change"
  measure "$ds restic changed" restic -q -r "$rr" backup "$src"
  measure "$ds cairn changed" $cairn -q -r "$cr" backup "$src"
  measure "$ds restic restore" restic -q -r "$rr" restore latest --target "$work/restore-restic"
  measure "$ds cairn restore" $cairn -q -r "$cr" restore latest --target "$work/restore-cairn"
  echo "$ds restic repo $(repo_size "$rr")" >>"$work/sizes"
  echo "$ds cairn repo $(repo_size "$cr")" >>"$work/sizes"
}

: >"$work/times"; : >"$work/sizes"
datasets=${DATASETS:-dump tree image}
for ds in $datasets; do
  case $ds in
    dump)
      if prepare_dump; then
        echo "dump: $(du -h "$work/dump.sql" | cut -f1)" >&2
        run_stream dump "$work/dump.sql" "$work/dump2.sql"
      else echo "dump: skipped (PostgreSQL unavailable)" >&2; fi ;;
    tree)
      rm -rf "$work/tree"; mkdir -p "$work/tree"; cp -a /usr/share "$work/tree/"
      echo "tree: $(du -sh "$work/tree" | cut -f1), $(find "$work/tree" -type f | wc -l) files" >&2
      run_tree tree "$work/tree" "for f in \$(find '$work/tree' -type f -name '*.txt' | head -50); do echo changed >>\"\$f\"; done" ;;
    image)
      prepare_image
      echo "image: $(du -h --apparent-size "$work/image.ext4" | cut -f1) apparent, $(du -h "$work/image.ext4" | cut -f1) allocated" >&2
      mkdir -p "$work/imgdir"; cp --sparse=always "$work/image.ext4" "$work/imgdir/"
      run_tree image "$work/imgdir" "printf 'x%.0s' \$(seq 1 4096) | dd of='$work/imgdir/image.ext4' bs=1 seek=100000000 conv=notrunc status=none" ;;
  esac
done

# Table: dataset, phase, restic s, cairn s, speedup, restic RSS, cairn RSS
echo
echo "| dataset | phase | restic s | cairn s | restic/cairn time | restic peak RSS MiB | cairn peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
awk '
  { key=$1" "$3; t[$2" "key]=$4; m[$2" "key]=$5; if (!(key in seen)) { order[n++]=key; seen[key]=1 } }
  END { for (i=0;i<n;i++) { split(order[i], k, " ");
        rt=t["restic "order[i]]; ct=t["cairn "order[i]];
        printf "| %s | %s | %.2f | %.2f | %.2fx | %.0f | %.0f |\n", k[1], k[2], rt, ct, (ct>0?rt/ct:0), m["restic "order[i]]/1024, m["cairn "order[i]]/1024 } }
' "$work/times"
echo
echo "| dataset | restic repo MiB | cairn repo MiB | cairn/restic |"
echo "|---|---|---|---|"
awk '{ s[$1" "$2]=$4; if (!($1 in seen)) { order[n++]=$1; seen[$1]=1 } }
  END { for (i=0;i<n;i++) { d=order[i]; printf "| %s | %.1f | %.1f | %.3f |\n", d, s[d" restic"]/1048576, s[d" cairn"]/1048576, s[d" cairn"]/s[d" restic"] } }' "$work/sizes"
