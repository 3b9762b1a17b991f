# Shared by the benchmark scripts (sourced after `cd` to the repository root).

need() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  }
}

# Sets $cairn: the binary CAIRN_BIN names, else a release build of this tree.
cairn_binary() {
  if [ -n "${CAIRN_BIN:-}" ]; then
    cairn=$CAIRN_BIN
  else
    cargo build --release -q -p cairn-cli
    cairn=$PWD/target/release/cairn
  fi
}
