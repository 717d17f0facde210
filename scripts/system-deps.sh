#!/usr/bin/env bash
# Best-effort install of the Debian packages used by integration tests. Never fails the caller
# on a machine without root or apt-get: the tests that need a package then skip with a reason
# (except in CI, where CI=true makes them required). `system-deps.sh allocator` installs only the
# memory allocator the command line prefers (tcmalloc: benchopt_bilevel/allocator.py).
set -u
packages="chromium dataset-fashion-mnist slurm-wlm munge libtcmalloc-minimal4 libjemalloc2"
missing=""
has_library() { { /sbin/ldconfig -p || ldconfig -p; } 2>/dev/null | grep -q "$1"; }
has_library libtcmalloc_minimal.so.4 || missing="$missing libtcmalloc-minimal4"
if [ "${1:-}" != "allocator" ]; then
  has_library libjemalloc.so.2 || missing="$missing libjemalloc2"
  command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
  [ -d /usr/share/datasets/fashion-mnist ] || missing="$missing dataset-fashion-mnist"
  command -v slurmctld >/dev/null 2>&1 || missing="$missing slurm-wlm"
  command -v munged >/dev/null 2>&1 || missing="$missing munge"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: not installing$missing (needs root and apt-get); tests that need them will skip" >&2
  exit 0
fi
echo "installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -q && apt-get install -y -q --no-install-recommends $missing; } >/tmp/benchopt-bilevel-apt.log 2>&1 \
  || { echo "warning: apt-get install$missing failed (see /tmp/benchopt-bilevel-apt.log)" >&2; exit 0; }
: "$packages"
