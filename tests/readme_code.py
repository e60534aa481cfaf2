#!/usr/bin/env python3
"""tests/readme_code.py SRC BUILD: compiles every ```c and ```cpp block of README.md as a user would.

A block with its own #include is a whole translation unit: it gets a prelude that declares the
placeholders the README leaves to the reader (my_heap_owns, make_page_accessible, heap). A block without
is a fragment: its functions (a line at column 0 that opens a body, to the "}" at column 0) go to file
scope and its other lines into the body of a function, after the umbrella header and the placeholders
(read_object, store, die, mark_range, forward, and the fd/buf/len/n of a read). Each is compiled and
linked with the static
library installed into a temporary prefix (`cmake --install`), with the flags `pkg-config --static --libs
faultline` gives there, so that the installed .pc file is checked too (a C program needs the C++ runtime
from its Libs.private); a block with main() is run and must exit 0. Blocks that are not
whole programs (no main) are compiled only (-c).
"""
import os
import re
import subprocess
import sys
import tempfile

FRAGMENT_PRELUDE = """#include <faultline/faultline.hpp>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <string>
[[maybe_unused]] static int store;
[[maybe_unused]] static char heap_storage[4096];
[[maybe_unused]] static void* heap = heap_storage;
[[maybe_unused]] static bool read_object(void*, std::size_t, void*, std::size_t) { return true; }
[[maybe_unused]] [[noreturn]] static void die(const std::string&) { std::abort(); }
[[maybe_unused]] static void mark_range(void*, const std::uintptr_t*, const std::uintptr_t*) {}
[[maybe_unused]] static std::uintptr_t forward(std::uintptr_t a, void*) { return a; }
"""
FRAGMENT_LOCALS = ("  [[maybe_unused]] long n = 0;\n  [[maybe_unused]] int fd = -1;\n  [[maybe_unused]] char buf[16];\n"
                   "  [[maybe_unused]] std::size_t len = sizeof buf;\n")


def as_unit(code: str) -> str:
    """A fragment as a translation unit: its functions at file scope, the rest in a function."""
    functions, statements, inside = [], [], False
    for line in code.splitlines():
        if not inside and line and not line[0].isspace() and line.rstrip().endswith("{") and "(" in line \
                and not re.match(r"(if|for|while|auto|\{)\b", line):
            inside = True
        (functions if inside else statements).append(line)
        if inside and line == "}":
            inside = False
    return FRAGMENT_PRELUDE + "\n".join(functions) + "\n[[maybe_unused]] static void fragment() {\n" + \
        FRAGMENT_LOCALS + "\n".join(statements) + "\n}\n"


CPP_PRELUDE = """#include <cstdint>
[[maybe_unused]] static char heap_storage[4096];
[[maybe_unused]] static void* heap = heap_storage;
[[maybe_unused]] static bool my_heap_owns(void*, std::uintptr_t) { return false; }
[[maybe_unused]] static void make_page_accessible(std::uintptr_t) {}
"""


def main() -> int:
    src, build = sys.argv[1], sys.argv[2]
    text = open(os.path.join(src, "README.md")).read()
    blocks = re.findall(r"```(c|cpp)\n(.*?)```", text, re.S)
    if len(blocks) < 2:
        print(f"expected a C and a C++ block, found {len(blocks)}")
        return 1
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "prefix")
        inst = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True, text=True)
        if inst.returncode != 0:
            print("cmake --install:", inst.stdout, inst.stderr)
            return 1
        pc_dirs = [os.path.join(root) for root, _, files in os.walk(prefix) if "faultline.pc" in files]
        env = dict(os.environ, PKG_CONFIG_PATH=":".join(pc_dirs))
        libs = subprocess.run(["pkg-config", "--static", "--libs", "faultline"], env=env, capture_output=True, text=True)
        cflags = subprocess.run(["pkg-config", "--cflags", "faultline"], env=env, capture_output=True, text=True)
        if libs.returncode != 0 or cflags.returncode != 0:
            print("pkg-config faultline:", libs.stderr, cflags.stderr)
            return 1
        # The static archive itself (the linker would take the shared library beside it): what the C
        # program needs besides comes from Libs.private, the C++ runtime included.
        link = [("-Wl,-Bstatic -lfaultline -Wl,-Bdynamic" if w == "-lfaultline" else w) for w in libs.stdout.split()]
        link = " ".join(link).split()
        for n, (lang, code) in enumerate(blocks):
            ext = "c" if lang == "c" else "cpp"
            path = os.path.join(tmp, f"block{n}.{ext}")
            whole = "#include" in code
            body = (CPP_PRELUDE if lang == "cpp" else "") + code if whole else as_unit(code)
            open(path, "w").write(body)
            compiler = ["cc", "-std=c11"] if lang == "c" else ["c++", "-std=c++20"]
            exe = os.path.join(tmp, f"block{n}")
            has_main = re.search(r"\bint main\(", code) is not None
            cmd = compiler + ["-Wall", "-Werror"] + cflags.stdout.split() + [path]
            cmd += ["-o", exe] + link if has_main else ["-c", "-o", exe + ".o"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"README block {n} ({lang}) does not build:\n{' '.join(cmd)}\n{r.stderr}")
                failures += 1
                continue
            if has_main and lang == "c":
                run = subprocess.run([exe], capture_output=True, text=True, timeout=60)
                if run.returncode != 0 or "page 3 was written" not in run.stdout:
                    print(f"README block {n} ({lang}) ran badly: {run.returncode}\n{run.stdout}{run.stderr}")
                    failures += 1
            print(f"README block {n} ({lang}): ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
