#!/usr/bin/env bash
# tests/packages.sh BUILD_DIR SOURCE_DIR: builds the Debian packages with the project's own command
# (cpack), extracts them into a temporary folder (dpkg-deb -x: nothing is installed on this machine),
# checks what each holds, and builds and runs consumers against the extracted tree: CMake
# (find_package), pkg-config, the command, and a program against the libsigsegv drop-in.
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && cpack --config "$build/CPackConfig.cmake" -B "$work/debs" >/dev/null)
ls "$work"/debs/*.deb
for name in libfaultline0 libfaultline-dev faultline faultline-sigsegv; do
  deb=$(ls "$work"/debs/${name}_*.deb)
  dpkg-deb -x "$deb" "$work/root"
  dpkg-deb -c "$deb" | awk '{print $6}' >"$work/$name.list"
done
has() { grep -q -- "$2" "$work/$1.list" || { echo "$1 lacks $2"; exit 1; }; }
lacks() { if grep -q -- "$2" "$work/$1.list"; then echo "$1 holds $2"; exit 1; fi; }
has libfaultline0 'usr/lib/libfaultline.so.0'
has libfaultline-dev 'usr/include/faultline/faultline.hpp'
has libfaultline-dev 'usr/lib/libfaultline.a'
has libfaultline-dev 'usr/lib/pkgconfig/faultline.pc'
has libfaultline-dev 'usr/lib/cmake/faultline/faultlineConfig.cmake'
has faultline 'usr/bin/faultline'
has faultline 'usr/lib/faultline/libfaultline_catch.so'
has faultline 'usr/share/man/man1/faultline-catch.1'
has faultline-sigsegv 'usr/lib/faultline/libsigsegv.so.2'
has faultline-sigsegv 'usr/lib/pkgconfig/faultline-sigsegv.pc'
for p in libfaultline0 libfaultline-dev faultline; do lacks $p 'libsigsegv'; done
# Never where the system's libsigsegv2 lives.
lacks faultline-sigsegv 'usr/lib/libsigsegv'
lacks faultline-sigsegv 'usr/lib/x86_64-linux-gnu/libsigsegv'
root=$work/root/usr
# CMake consumer, static and shared.
cmake -S "$src/tests/consumer" -B "$work/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$root" >/dev/null
cmake --build "$work/consumer" >/dev/null
[ "$("$work/consumer/consumer_static")" = "resolved 1" ]
[ "$(LD_LIBRARY_PATH="$root/lib" "$work/consumer/consumer_shared")" = "resolved 1" ]
# pkg-config, from C with the static library.
export PKG_CONFIG_PATH="$root/lib/pkgconfig"
cc -std=c11 "$src/tests/consumer_c/main.c" -o "$work/c_static" $(pkg-config --cflags faultline) \
   -Wl,-Bstatic -lfaultline -Wl,-Bdynamic $(pkg-config --static --libs faultline | sed 's/-lfaultline//')
[ "$("$work/c_static")" = "read 7" ]
# The command, from the extracted tree (it finds its preload library beside it).
"$root/bin/faultline" --version | grep -q "faultline"
out=$("$root/bin/faultline" catch -- /bin/true 2>&1) || { echo "catch /bin/true: $out"; exit 1; }
# The drop-in, through its pkg-config file.
cat >"$work/so.c" <<'C'
#include <sigsegv.h>
#include <stdio.h>
int main(void) { printf("%d\n", sigsegv_install_handler(0) == 0 ? LIBSIGSEGV_VERSION : -1); return 0; }
C
cc "$work/so.c" -o "$work/so" $(pkg-config --cflags --libs faultline-sigsegv)
[ "$("$work/so")" = "$((0x020E))" ]
echo "packages: 4 built, extracted, and used (CMake, pkg-config from C, the command, the drop-in)"
