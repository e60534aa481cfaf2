#!/usr/bin/env python3
"""check-layers.py [--root DIR] [--rules FILE]: checks every #include "..." against src/layers.txt.

Each source file (src/, include/, compat/, tools/, bench/, examples/) belongs to a layer; a quoted
include must name a file of its own layer or of a layer its layer may include. Angle-bracket includes
(the system's and other libraries') are not checked. Exit 1 with one line per violation; 0 otherwise.
"""
import argparse
import fnmatch
import os
import re
import sys

TREES = ["src", "include", "compat", "tools", "bench", "examples"]
EXTS = (".hpp", ".h", ".cpp", ".c", ".S")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def glob_re(pattern):
    # ** spans folders, * stays inside one.
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile("^" + out + "$")


def load_rules(path):
    layers, allow = [], {}
    for n, line in enumerate(open(path), 1):
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        kind, name, rest = line[0], line[1], line[2:]
        if kind == "layer":
            layers.append((name, [glob_re(g) for g in rest]))
        elif kind == "allow":
            allow[name] = set(rest)
        else:
            sys.exit(f"{path}:{n}: unknown rule '{kind}'")
    names = {n for n, _ in layers}
    for name, targets in allow.items():
        for t in targets | {name}:
            if t not in names:
                sys.exit(f"{path}: allow {name}: unknown layer '{t}'")
    return layers, allow


def layer_of(rel, layers):
    for name, globs in layers:
        if any(g.match(rel) for g in globs):
            return name
    return None


def resolve(root, src_rel, inc):
    """The repository-relative path an include names, or None when it is not one of ours."""
    candidates = [
        os.path.join(os.path.dirname(src_rel), inc),  # next to the including file
        os.path.join("include", inc),                  # public headers
        os.path.join("src", inc),                      # library-internal paths ("region/table.hpp")
        os.path.join("src/os/linux/uapi", inc),        # the faultline_uapi target's folder
        os.path.join("tools/faultline", inc),          # the command's own folder
    ]
    for c in candidates:
        c = os.path.normpath(c)
        if os.path.isfile(os.path.join(root, c)):
            return c
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--rules", default=None)
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    layers, allow = load_rules(args.rules or os.path.join(root, "src", "layers.txt"))
    bad, files = [], 0
    for tree in TREES:
        for dirpath, _, names in os.walk(os.path.join(root, tree)):
            for fn in sorted(names):
                if not fn.endswith(EXTS):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, fn), root)
                layer = layer_of(rel, layers)
                if layer is None:
                    bad.append(f"{rel}: belongs to no layer (add it to src/layers.txt)")
                    continue
                files += 1
                text = open(os.path.join(root, rel), errors="replace").read()
                for m in INCLUDE.finditer(text):
                    target = resolve(root, rel, m.group(1))
                    if target is None:
                        continue  # a generated or third-party header
                    tl = layer_of(target, layers)
                    if tl is None or tl == layer or tl in allow.get(layer, set()):
                        continue
                    line = text.count("\n", 0, m.start()) + 1
                    bad.append(f"{rel}:{line}: layer '{layer}' may not include '{m.group(1)}' (layer '{tl}')")
    for b in bad:
        print(b, file=sys.stderr)
    if bad:
        print(f"check-layers: {len(bad)} violation(s)", file=sys.stderr)
        return 1
    print(f"check-layers: {files} files, every include allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
