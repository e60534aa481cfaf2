#!/usr/bin/env bash
# install_consumer.sh BUILD_DIR SOURCE_DIR: installs faultline from BUILD_DIR into a scratch prefix, then
# builds and runs a consumer through find_package (static and shared) and through pkg-config.
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/tests/consumer" -B "$work/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
[ "$("$work/consumer/consumer_static")" = "resolved 1" ]
[ "$(LD_LIBRARY_PATH="$work/prefix/lib" "$work/consumer/consumer_shared")" = "resolved 1" ]
# A C-only CMake project with the static library.
cmake -S "$src/tests/consumer_c" -B "$work/consumer_c" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer_c" >/dev/null
[ "$("$work/consumer_c/consumer_c")" = "read 7" ]
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
c++ -std=c++20 "$src/tests/consumer/main.cpp" -o "$work/pc" $(pkg-config --cflags faultline) \
    -Wl,-Bstatic $(pkg-config --libs --static faultline | sed 's/-lunwind//; s/-lZydis//') -Wl,-Bdynamic -lunwind -lZydis -lpthread
[ "$("$work/pc")" = "resolved 1" ]
echo "install: find_package (static, shared, from C) and pkg-config consumers work"
