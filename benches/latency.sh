#!/usr/bin/env bash
# cairn and restic against an S3-compatible server 20 ms away: moto on loopback behind a
# proxy that delays every request (benches/delay_proxy.py), as a remote store does.
#
#   benches/latency.sh [WORKDIR]
#
# SOURCE (default /usr/share/doc) is backed up; phases: first backup, unchanged re-backup,
# check --read-data, restore latest. restic runs twice: with its local cache (warm from its
# own first backup) and with --no-cache; cairn with its cache (warm from its first backup)
# and with an empty one per run, as a fresh pod has (CAIRN_BIN to pick a binary,
# CAIRN_ARGS for extra options). Prints one line per run: tool phase wall_s peak_kib
# requests, where requests is what the proxy saw (every tool counted the same way).
# DELAY_MS (default 20) sets the delay; SKIP_RESTIC=1 measures cairn only. Installs moto, restic and GNU time when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/cairn-latency.XXXXXX)}
mkdir -p "$work"
source_dir=${SOURCE:-/usr/share/doc}
delay=${DELAY_MS:-20}

. benches/lib.sh
PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
need moto_server || python3 -m pip install --quiet 'moto[server]'
need restic || apt_install restic
[ -x /usr/bin/time ] || apt_install time

cairn_binary

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
moto_port=$(free_port)
proxy_port=$(free_port)
count_file=$work/requests
moto_server -H 127.0.0.1 -p "$moto_port" >/dev/null 2>&1 &
moto_pid=$!
python3 benches/delay_proxy.py "$proxy_port" "$moto_port" "$delay" "$count_file" &
proxy_pid=$!
trap 'kill $moto_pid $proxy_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$moto_port/" && break
  sleep 0.1
done
curl -s -X PUT "http://127.0.0.1:$moto_port/bench" >/dev/null

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT=http://127.0.0.1:$proxy_port AWS_ALLOW_HTTP=true
export RESTIC_PASSWORD=latency CAIRN_PASSWORD=latency
restic_repo=s3:http://127.0.0.1:$proxy_port/bench/restic
cairn_repo=s3://bench/cairn

echo "# $(restic version | head -1); cairn $($cairn --version | awk '{print $2}'); ${delay} ms per request; source $source_dir ($(du -sh "$source_dir" | cut -f1))" >&2
printf '%-14s %-10s %8s %10s %9s\n' tool phase wall_s peak_kib requests

# measure TOOL PHASE COMMAND...: runs it, prints wall time, peak RSS and the requests the
# proxy saw while it ran.
measure() {
  local tool=$1 phase=$2; shift 2
  local before after
  before=$(cat "$count_file")
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
    echo "$tool $phase failed:" >&2; tail -5 "$work/err" >&2; return 1; }
  after=$(cat "$count_file")
  read -r wall rss <"$work/time"
  printf '%-14s %-10s %8s %10s %9s\n' "$tool" "$phase" "$wall" "$rss" $((after - before))
}

restic_cache=$work/restic-cache
rm -rf "$work/restore-"*
if [ -z "${SKIP_RESTIC:-}" ]; then
restic -r "$restic_repo" --cache-dir "$restic_cache" init -q >/dev/null
measure restic backup restic -r "$restic_repo" --cache-dir "$restic_cache" backup -q "$source_dir"
measure restic unchanged restic -r "$restic_repo" --cache-dir "$restic_cache" backup -q "$source_dir"
measure restic check-data restic -r "$restic_repo" --cache-dir "$restic_cache" check --read-data
measure restic restore restic -r "$restic_repo" --cache-dir "$restic_cache" restore latest --target "$work/restore-restic"
measure restic-nocache unchanged restic -r "$restic_repo" --no-cache backup -q "$source_dir"
measure restic-nocache check-data restic -r "$restic_repo" --no-cache check --read-data
measure restic-nocache restore restic -r "$restic_repo" --no-cache restore latest --target "$work/restore-restic-nc"
fi

cairn_cache=$work/cairn-cache
rm -rf "$cairn_cache" "$work"/cairn-cold-*
# shellcheck disable=SC2086
"$cairn" -r "$cairn_repo" --cache-dir "$cairn_cache" init ${CAIRN_ARGS:-} >/dev/null
# shellcheck disable=SC2086
{
measure cairn backup "$cairn" -q -r "$cairn_repo" --cache-dir "$cairn_cache" ${CAIRN_ARGS:-} backup "$source_dir"
measure cairn unchanged "$cairn" -q -r "$cairn_repo" --cache-dir "$cairn_cache" ${CAIRN_ARGS:-} backup "$source_dir"
measure cairn check-data "$cairn" -q -r "$cairn_repo" --cache-dir "$cairn_cache" ${CAIRN_ARGS:-} check --read-data
measure cairn restore "$cairn" -q -r "$cairn_repo" --cache-dir "$cairn_cache" ${CAIRN_ARGS:-} restore latest --target "$work/restore-cairn"
# A fresh pod: every run starts with an empty cache directory.
measure cairn-cold unchanged "$cairn" -q -r "$cairn_repo" --cache-dir "$work/cairn-cold-1" ${CAIRN_ARGS:-} backup "$source_dir"
measure cairn-cold restore "$cairn" -q -r "$cairn_repo" --cache-dir "$work/cairn-cold-2" ${CAIRN_ARGS:-} restore latest --target "$work/restore-cairn-cold"
}
if diff -r --no-dereference "$source_dir" "$work/restore-cairn/${source_dir#/}" >/dev/null; then
  echo "# cairn's restore matches the source" >&2
else
  echo "# cairn's restore DIFFERS from the source" >&2
fi
