#!/usr/bin/env bash
# cairn's main job on a fresh machine: back up a real directory tree into a new local
# repository, restore it elsewhere with verification, and compare the two trees.
#   ./demo.sh [DIRECTORY]        (default /usr/share/doc)
# CAIRN_PROFILE=dev builds the debug profile instead of release (faster to compile).
set -euo pipefail
cd "$(dirname "$0")"
source_dir=$(realpath "${1:-/usr/share/doc}")
profile=${CAIRN_PROFILE:-release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAIRN_REPOSITORY="$work/repo" CAIRN_PASSWORD="demo password"

cargo build --quiet --profile "$profile" -p cairn-cli
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
cairn="target/$dir/cairn"

"$cairn" init
"$cairn" backup "$source_dir"
"$cairn" backup "$source_dir"          # unchanged: nothing is read again
"$cairn" snapshots
"$cairn" restore latest --target "$work/restore" --verify
diff -r --no-dereference "$source_dir" "$work/restore$source_dir"
echo "restored tree is identical to $source_dir"
"$cairn" stats
