#!/usr/bin/env bash
# setup-aarch64.sh: install what the aarch64 workflow needs on a Debian 12 x86-64 machine: the cross
# compiler, qemu-user (to run the tests), and the arm64 -dev packages faultline links against, through
# Debian's multiarch. Idempotent. Needs root (or sudo).
#
# Kept apart from scripts/setup.sh on purpose: a foreign architecture in apt must never be able to break
# the set-up of a user on x86-64 who runs the README's two commands. Only the aarch64 workflow (and CI)
# runs this script.
set -euo pipefail

host_packages=(g++-aarch64-linux-gnu qemu-user)
arm64_packages=(
  libc6 libstdc++6              # the runtime the tests run on under qemu-user (-L /)
  libgtest-dev libgmock-dev     # the test suite
  libunwind-dev                 # backtraces in the crash report
  libabsl-dev                   # demangling in the report
  libdw-dev                     # file:line in `faultline catch` and `faultline symbolize`
  libbenchmark-dev              # the micro-benchmarks
  libzstd-dev                   # the snapshot example
  libhiredis-dev                # the Redis Cluster store
  libsigsegv-dev                # the libsigsegv baseline
)
arch_all_packages=(libcli11-dev nlohmann-json3-dev)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup-aarch64: adding the arm64 architecture to dpkg" >&2
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq >&2
fi

missing=()
for p in "${host_packages[@]}" "${arch_all_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for p in "${arm64_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p:arm64" 2>/dev/null | grep -q "install ok installed" || missing+=("$p:arm64")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup-aarch64: installing ${missing[*]}" >&2
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
