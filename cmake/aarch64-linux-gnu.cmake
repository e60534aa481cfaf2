# cmake/aarch64-linux-gnu.cmake: cross-build for aarch64 with Debian's g++-aarch64-linux-gnu, and run
# what the build runs (tests, man-page generation) under qemu-user. scripts/setup-aarch64.sh installs
# the compiler, qemu-user and the arm64 -dev packages (multiarch).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Headers and libraries of the target come from the multiarch folders; programs from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# pkg-config: the arm64 .pc files only.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
# FAULTLINE_EMULATOR tells tests they run under qemu-user (a skip names what qemu cannot do).
# `-L /`: the arm64 libraries of multiarch (libc6:arm64 and the -dev packages). Not the cross
# toolchain's /usr/aarch64-linux-gnu: its ld.so and libc (libc6-arm64-cross) can be a Debian revision
# apart from the multiarch libc the other libraries come with, and mixing them hangs pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/env;FAULTLINE_EMULATOR=qemu-user;/usr/bin/qemu-aarch64;-L;/)
