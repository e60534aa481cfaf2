#!/usr/bin/env bash
# setup.sh: install the Debian packages faultline needs to build, test and benchmark.
# Idempotent: installs only what is missing. Needs root (or sudo) on Debian 12.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev   # tests and micro-benchmarks
  libunwind-dev                                # backtraces in the crash report
  libabsl-dev                                  # demangling in the report (abseil's allocation-free demangler)
  libdw-dev                                    # file:line for `faultline catch` and `faultline symbolize` (elfutils)
  help2man                                     # the man pages, generated from the command's own help
  libzydis-dev                                 # x86-64 instruction decoder (signal-safe, no allocation)
  libcli11-dev nlohmann-json3-dev              # the faultline command line and its JSON output
  libsigsegv-dev libgc-dev                     # baselines measured by `faultline bench`
  liburing-dev                                 # the file store's reads
  libzstd-dev                                  # the lazy snapshot-restore example compresses its snapshot
  libhiredis-dev                               # the Redis Cluster store's client (protocol, connections)
  redis-server redis-tools                     # the loopback cluster the cluster tests and bench rows start
  clang binutils                               # fuzzing target; nm for the signal-path symbol check
  python3 python3-jsonschema                   # the bench JSON schema test
  rsync                                        # scripts/mutate.py copies the tree to a scratch folder
  rustc cargo librust-libc-dev                 # the Rust crates (bindings/rust), offline, Debian's crates only
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
