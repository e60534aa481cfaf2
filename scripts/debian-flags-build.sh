#!/usr/bin/env bash
# scripts/debian-flags-build.sh: builds faultline as a Debian package build would (dpkg-buildflags with
# every hardening feature: _FORTIFY_SOURCE=2, stack protector, PIE, relro/now, format security), with
# warnings as errors, and runs every test there, the signal-path audit included. Part of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cppflags=$(dpkg-buildflags --get CPPFLAGS)
cflags="$(dpkg-buildflags --get CFLAGS) $cppflags"
cxxflags="$(dpkg-buildflags --get CXXFLAGS) $cppflags"
ldflags=$(dpkg-buildflags --get LDFLAGS)
echo "CXXFLAGS: $cxxflags"
echo "LDFLAGS:  $ldflags"
cmake -S . -B build/debian -G Ninja -DCMAKE_BUILD_TYPE=None -DFAULTLINE_WERROR=ON -DFAULTLINE_BENCH=OFF -DFAULTLINE_RUST_TESTS=OFF \
  -DCMAKE_C_FLAGS="$cflags" -DCMAKE_CXX_FLAGS="$cxxflags" \
  -DCMAKE_EXE_LINKER_FLAGS="$ldflags" -DCMAKE_SHARED_LINKER_FLAGS="$ldflags"
cmake --build build/debian -j2
ctest --test-dir build/debian -j2 --timeout 300 --output-on-failure
