#!/usr/bin/env bash
# `cairn mount`: peak RSS of the mount process while tar reads a whole snapshot of about
# 1 GB, and read amplification (pack bytes fetched / bytes read) of one random 1 MiB read
# from the middle of a 1 GB file, from a fresh mount.
#
#   benches/mount.sh [TREE]      (default /usr/share, plus a 400 MB file of random bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
tree=${1:-/usr/share}
work=${WORK:-/tmp/cairn-mount}
. benches/lib.sh
[ -x /usr/bin/time ] || apt_install time
need fusermount3 || apt_install fuse3
cairn_binary
rm -rf "$work"; mkdir -p "$work/src" "$work/mnt"
export CAIRN_PASSWORD=mount-bench
head -c 400000000 /dev/urandom > "$work/src/random.bin"
head -c 1000000000 /dev/urandom > "$work/big.bin"
"$cairn" -r "$work/repo" init -q
"$cairn" -r "$work/repo" backup -q "$tree" "$work/src"
"$cairn" -r "$work/repo" backup -q "$work/big.bin"
mounted() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$cairn" -r "$work/repo" --json mount "$work/mnt" \
    >"$work/mount.out" 2>"$work/mount.err" &
  for _ in $(seq 100); do [ -d "$work/mnt/snapshots" ] && return 0; sleep 0.1; done
  echo "mount did not appear" >&2; cat "$work/mount.err" >&2; return 1
}
# Only the cairn process (not the time wrapper, whose command line holds the same words).
unmounted() { pkill -TERM -f "^$cairn -r $work/repo --json mount" || true; wait; }
mounted
first=$(ls "$work/mnt/snapshots" | head -1)
start=$(date +%s.%N)
tar -cf - -C "$work/mnt/snapshots/$first" . | wc -c > "$work/tar.bytes"
end=$(date +%s.%N)
unmounted
echo "tar-snapshot bytes $(cat "$work/tar.bytes") wall_s $(echo "$end - $start" | bc) mount_peak_kib $(cut -d' ' -f2 "$work/time")"
mounted
big=$(find "$work/mnt/snapshots/latest/" -name big.bin | head -1)
dd if="$big" of=/dev/null bs=1M skip=500 count=1 2>/dev/null
unmounted
fetched=$(python3 -c "
import json,sys
for line in open('$work/mount.out'):
    v=json.loads(line)
    if v.get('message_type')=='summary':
        print(sum(k['bytes_read'] for k in v['requests'] if k['kind']=='data'))")
echo "random-1MiB-read fetched $fetched amplification $(echo "scale=2; $fetched / 1048576" | bc) mount_peak_kib $(cut -d' ' -f2 "$work/time")"
