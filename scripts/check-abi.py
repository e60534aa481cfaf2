#!/usr/bin/env python3
"""scripts/check-abi.py: the shared library's ABI against the record in abi/faultline.abi.

The record holds the library's soname, the prototype of every function of the C interface
(include/faultline/faultline.h) and the size and alignment of every struct it defines. The check fails
when the built library's soname differs, when a recorded function is no longer exported or its
prototype changed, when an exported fl_* function is not recorded, or when a struct's layout changed.
The policy (README, "ABI"): additions are recorded with --update; anything else is a break, which
needs a new soname (libfaultline.so.N+1) in the same commit.

Usage:
  check-abi.py --lib LIB --header H --layout PROG --abi FILE             check
  check-abi.py --lib LIB --header H --layout PROG --abi FILE --update    rewrite FILE from the build
  check-abi.py ... --self-test   also prove that the check fails on a removed function, a changed
                                 prototype, a changed layout and a changed soname
"""
import argparse
import re
import subprocess
import sys


def prototypes(header: str) -> dict:
    """fl_* function name -> its prototype, comments removed and whitespace collapsed."""
    text = open(header).read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)
    out = {}
    # Declarations end with ';'; a function declaration has "fl_name(" not preceded by "(*".
    for decl in text.split(";"):
        d = " ".join(decl.split())
        d = re.sub(r"^.*[{}]\s*", "", d)  # what follows the last brace (typedef bodies, extern "C" {)
        m = re.search(r"\b(fl_[a-z0-9_]+)\s*\(", d)
        if not m or "(*" in d[: m.start() + 1] or d.startswith("typedef"):
            continue
        out[m.group(1)] = d.replace("( ", "(").replace(" )", ")") + ";"
    return out


def exported(lib: str) -> set:
    nm = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in nm.splitlines() if re.match(r"^\S+ T fl_", line)}


def soname(lib: str) -> str:
    out = subprocess.run(["readelf", "-d", lib], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Library soname: \[([^\]]+)\]", out)
    return m.group(1) if m else ""


def layouts(prog: str) -> dict:
    out = subprocess.run([prog], capture_output=True, text=True, check=True).stdout
    return {l.split()[1]: " ".join(l.split()[2:]) for l in out.splitlines() if l.startswith("layout ")}


def build_record(lib, header, prog) -> dict:
    return {"soname": soname(lib), "fn": prototypes(header), "layout": layouts(prog), "exported": exported(lib)}


def write(path: str, rec: dict) -> None:
    with open(path, "w") as f:
        f.write("# abi/faultline.abi: the ABI of libfaultline's C interface (scripts/check-abi.py; README, \"ABI\").\n")
        f.write("# Written by scripts/check-abi.py --update: additions only, unless the soname changes with them.\n")
        f.write(f"soname {rec['soname']}\n")
        for name, t in sorted(rec["layout"].items()):
            f.write(f"layout {name} {t}\n")
        for name, p in sorted(rec["fn"].items()):
            f.write(f"fn {name} {p}\n")


def read(path: str) -> dict:
    rec = {"soname": "", "fn": {}, "layout": {}}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        kind, rest = line.rstrip("\n").split(" ", 1)
        if kind == "soname":
            rec["soname"] = rest
        elif kind == "layout":
            name, t = rest.split(" ", 1)
            rec["layout"][name] = t
        elif kind == "fn":
            name, p = rest.split(" ", 1)
            rec["fn"][name] = p
    return rec


def compare(recorded: dict, built: dict) -> list:
    problems = []
    if recorded["soname"] != built["soname"]:
        problems.append(f"soname: recorded {recorded['soname']}, built {built['soname']}")
    for name, p in recorded["fn"].items():
        if name not in built["exported"]:
            problems.append(f"{name}: recorded but no longer exported (a break: new soname)")
        elif name in built["fn"] and built["fn"][name] != p:
            problems.append(f"{name}: prototype changed (a break: new soname)\n    was: {p}\n    now: {built['fn'][name]}")
        elif name not in built["fn"]:
            problems.append(f"{name}: exported but no longer declared in the header")
    for name in sorted(built["exported"]):
        if name not in recorded["fn"]:
            problems.append(f"{name}: exported but not recorded (an addition: scripts/check-abi.py --update)")
    for name, t in recorded["layout"].items():
        if built["layout"].get(name) != t:
            problems.append(f"struct {name}: layout (size alignment) was {t}, now {built['layout'].get(name)} (a break: new soname)")
    for name in built["layout"]:
        if name not in recorded["layout"]:
            problems.append(f"struct {name}: not recorded (scripts/check-abi.py --update)")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--header", required=True)
    ap.add_argument("--layout", required=True)
    ap.add_argument("--abi", required=True)
    ap.add_argument("--update", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    built = build_record(a.lib, a.header, a.layout)
    if a.update:
        write(a.abi, built)
        print(f"wrote {a.abi}: {len(built['fn'])} functions, {len(built['layout'])} structs, {built['soname']}")
        return 0
    recorded = read(a.abi)
    problems = compare(recorded, built)
    for p in problems:
        print("ABI: " + p)
    if a.self_test:
        # The check must catch each kind of break.
        name = sorted(recorded["fn"])[0]
        cases = {
            "a removed function": dict(built, exported=built["exported"] - {name}),
            "a changed prototype": dict(built, fn=dict(built["fn"], **{name: built["fn"][name].replace("(", "(int x, ", 1)})),
            "a changed layout": dict(built, layout=dict(built["layout"], fl_error="1 1")),
            "a changed soname": dict(built, soname="libfaultline.so.99"),
            "an unrecorded function": dict(built, exported=built["exported"] | {"fl_not_recorded"}),
        }
        for what, b in cases.items():
            if not compare(recorded, b):
                print(f"ABI self-test: {what} went unnoticed")
                problems.append(what)
    if problems:
        return 1
    print(f"ABI: {built['soname']}, {len(recorded['fn'])} functions and {len(recorded['layout'])} structs as recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
