#!/usr/bin/env python3
"""scripts/mutate.py: mutation check: does deleting or inverting a behaviour make its tests fail?

Each mutation in scripts/mutations.txt (format described at the top of that file) names a file, an
exact snippet that must occur there exactly once, its replacement (delete this call, invert this
condition, return early here) and the tests that must fail once it is applied. The script

  1. copies the repository once to a scratch folder (rsync, without build folders; files whose content
     did not change are left alone, so the next run's build is incremental) and configures one build
     there (RelWithDebInfo like the default preset, FAULTLINE_BENCH=OFF);
  2. builds it and runs every selected mutation's tests on the unmutated tree: they must pass, or the
     mutation could not be judged;
  3. for each mutation: applies it, builds incrementally (ninja rebuilds the changed object and the
     links), runs its tests with a timeout (killing the whole process group), records "killed" (some
     test failed or hung) or "survived" (all passed), and restores the file;
  4. prints a table and the mutation score, and exits non-zero if any mutation survived, is stale (its
     snippet no longer occurs exactly once, or its tests match nothing), does not build, or its tests
     fail without it.

Usage:
  python3 scripts/mutate.py              the CI subset (mutations marked "ci"; about 6 minutes here)
  python3 scripts/mutate.py --all        every mutation
  python3 scripts/mutate.py --only NAME  one mutation (repeatable)
  python3 scripts/mutate.py --list       list the mutations and exit
Options: --scratch DIR (default: $TMPDIR/faultline-mutate), --file FILE (default scripts/mutations.txt),
--root DIR (mutate another checkout, e.g. an older commit, with this list), --verbose.

CI: add the line `python3 scripts/mutate.py` to .ci/run (it needs no ctest preset; it builds its own
tree).
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TIMEOUT = 120


@dataclass
class Mutation:
    name: str
    ci: bool
    file: str = ""
    find: str = ""
    replace: str = ""
    tests: list = field(default_factory=list)  # ("gtest"|"ctest", pattern)
    targets: list = field(default_factory=list)
    timeout: int = DEFAULT_TIMEOUT
    why: str = ""
    line: int = 0


def parse(path: str) -> list:
    """Reads the mutation list (format: see the top of scripts/mutations.txt)."""
    mutations, cur, section = [], None, None
    with open(path) as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.startswith("#") and section is None:
                continue
            if line.startswith("== "):
                words = line[3:].split()
                if not words or not re.fullmatch(r"[A-Za-z0-9_.-]+", words[0]) or any(w != "ci" for w in words[1:]):
                    sys.exit(f"{path}:{number}: expected '== NAME [ci]'")
                cur = Mutation(name=words[0], ci="ci" in words[1:], line=number)
                mutations.append(cur)
                section = None
                continue
            if cur is None:
                if line.strip():
                    sys.exit(f"{path}:{number}: text before the first '== NAME' line")
                continue
            if line.startswith("|"):
                if section not in ("find", "replace"):
                    sys.exit(f"{path}:{number}: a '|' line outside find:/replace:")
                text = line[1:] + "\n"
                setattr(cur, section, getattr(cur, section) + text)
                continue
            section = None
            if not line.strip() or line.startswith("#"):
                continue
            key, _, value = line.partition(":")
            value = value.strip()
            if key == "file":
                cur.file = value
            elif key == "tests":
                kind, _, pattern = value.partition(":")
                if kind not in ("gtest", "ctest") or not pattern:
                    sys.exit(f"{path}:{number}: tests: gtest:FILTER or ctest:REGEX")
                cur.tests.append((kind, pattern))
            elif key == "build":
                cur.targets += value.split()
            elif key == "timeout":
                cur.timeout = int(value)
            elif key == "why":
                cur.why = value
            elif key in ("find", "replace") and value == "":
                section = key
            else:
                sys.exit(f"{path}:{number}: unknown line: {line}")
    names = set()
    for m in mutations:
        if m.name in names:
            sys.exit(f"{path}:{m.line}: duplicate mutation name {m.name}")
        names.add(m.name)
        if not m.file or not m.find or not m.tests:
            sys.exit(f"{path}:{m.line}: {m.name} needs file:, find: and tests:")
    return mutations


def run(cmd, cwd=None, timeout=None, env=None):
    """Runs cmd in its own process group; returns (returncode or None on timeout, output)."""
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         errors="replace", start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out + f"\n[mutate.py: timed out after {timeout} s]\n"


class Tree:
    def __init__(self, scratch: str, root: str):
        self.root = os.path.abspath(root)
        self.src = os.path.join(scratch, "tree")
        self.build = os.path.join(scratch, "build")
        os.makedirs(self.src, exist_ok=True)

    def sync(self):
        # No -t: a file whose content changed is rewritten with a fresh mtime, so ninja always rebuilds it
        # (an old mtime copied from the repository could look older than an object built from a mutant).
        rc, out = run(["rsync", "-rlpD", "--checksum", "--delete", "--exclude=/build/", "--exclude=/.git",
                       "--exclude=__pycache__", self.root + "/", self.src + "/"])
        if rc != 0:
            sys.exit("rsync failed:\n" + out)

    def configure(self):
        if os.path.exists(os.path.join(self.build, "build.ninja")):
            return
        rc, out = run(["cmake", "-S", self.src, "-B", self.build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                       "-DFAULTLINE_BENCH=OFF"])
        if rc != 0:
            sys.exit("configure failed:\n" + out)

    def compile(self, targets=None):
        cmd = ["cmake", "--build", self.build]
        if targets:
            cmd += ["--target"] + targets
        return run(cmd, timeout=1800)

    def env(self):
        e = dict(os.environ)
        e["FAULTLINE_CLI"] = os.path.join(self.build, "tools", "faultline", "faultline")
        return e

    def run_test(self, kind: str, pattern: str, timeout: int):
        """Returns ("pass"|"fail"|"none", output)."""
        if kind == "gtest":
            rc, out = run([os.path.join(self.build, "tests", "faultline_tests"), "--gtest_filter=" + pattern,
                           "--gtest_brief=1"], timeout=timeout, env=self.env())
            if rc == 0 and re.search(r"\[==========\] 0 tests from", out):
                return "none", out
        else:
            rc, out = run(["ctest", "--test-dir", self.build, "-R", pattern, "--output-on-failure",
                           "--timeout", str(timeout)], timeout=timeout + 60, env=self.env())
            if "No tests were found" in out:
                return "none", out
        return ("pass" if rc == 0 else "fail"), out


def targets_for(m: Mutation) -> list:
    if m.targets:
        return m.targets
    if all(kind == "gtest" for kind, _ in m.tests):
        return ["faultline_tests"]
    return []  # everything


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="every mutation, not only the CI subset")
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="only this mutation (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--check", action="store_true",
                    help="only check that every snippet occurs exactly once in its file (fast; a test runs it)")
    ap.add_argument("--file", default=os.path.join(ROOT, "scripts", "mutations.txt"))
    ap.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "faultline-mutate"))
    ap.add_argument("--verbose", action="store_true", help="print the output of every test run")
    ap.add_argument("--root", default=ROOT, help="the tree to copy and mutate (default: this repository)")
    args = ap.parse_args()

    mutations = parse(args.file)
    if args.list:
        for m in mutations:
            print(f'{m.name:45} {"ci " if m.ci else "   "}{m.file}')
        return 0
    if args.check:
        stale = []
        for m in mutations:
            try:
                count = open(os.path.join(args.root, m.file)).read().count(m.find)
            except OSError as e:
                count = f"unreadable ({e})"
            if count != 1:
                stale.append(f"{m.name}: the snippet occurs {count} times in {m.file}")
        print("\n".join(stale) if stale else f"{len(mutations)} mutations, every snippet found once")
        return 1 if stale else 0
    if args.only:
        unknown = set(args.only) - {m.name for m in mutations}
        if unknown:
            sys.exit("unknown mutation(s): " + ", ".join(sorted(unknown)))
        selected = [m for m in mutations if m.name in args.only]
    else:
        selected = [m for m in mutations if args.all or m.ci]

    started = time.monotonic()
    tree = Tree(args.scratch, args.root)
    print(f"mutate.py: {len(selected)} mutation(s); scratch tree {args.scratch}", flush=True)
    tree.sync()
    tree.configure()
    rc, out = tree.compile()
    if rc != 0:
        print(out)
        sys.exit("the unmutated tree does not build")

    # The tests must pass on the unmutated tree, or a "killed" would mean nothing.
    baseline = {}
    for m in selected:
        for kind, pattern in m.tests:
            if (kind, pattern) in baseline:
                continue
            verdict, out = tree.run_test(kind, pattern, m.timeout)
            baseline[(kind, pattern)] = verdict
            if verdict != "pass":
                print(f"baseline: {kind}:{pattern}: {verdict}\n{out[-3000:]}", flush=True)
    print(f"baseline: {len(baseline)} test selection(s) run on the unmutated tree "
          f"({time.monotonic() - started:.0f} s so far)", flush=True)

    results = []
    for m in selected:
        t0 = time.monotonic()
        path = os.path.join(tree.src, m.file)
        try:
            with open(path) as f:
                original = f.read()
        except OSError as e:
            results.append((m, "stale", 0.0, f"cannot read {m.file}: {e}"))
            continue
        count = original.count(m.find)
        if count != 1:
            results.append((m, "stale", 0.0, f"the snippet occurs {count} times in {m.file}"))
            continue
        bad_base = [f"{k}:{p}" for k, p in m.tests if baseline[(k, p)] != "pass"]
        if bad_base:
            results.append((m, "baseline", 0.0, "fails (or matches nothing) unmutated: " + ", ".join(bad_base)))
            continue
        detail = ""
        try:
            with open(path, "w") as f:
                f.write(original.replace(m.find, m.replace))
            rc, out = tree.compile(targets_for(m))
            if rc != 0:
                verdict, detail = "no-build", out[-2000:]
            else:
                verdict = "survived"
                for kind, pattern in m.tests:
                    v, out = tree.run_test(kind, pattern, m.timeout)
                    if args.verbose:
                        print(out)
                    if v == "fail":
                        verdict, detail = "killed", f"{kind}:{pattern}"
                        break
        finally:
            with open(path, "w") as f:
                f.write(original)
        results.append((m, verdict, time.monotonic() - t0, detail))
        print(f"  {m.name:45} {verdict:9} {time.monotonic() - t0:6.1f} s  {detail.splitlines()[0] if detail else ''}",
              flush=True)

    # The tree as it was (the last mutation's objects are rebuilt now rather than at the next run).
    tree.compile()

    print("\n{:45} {:9} {:>7}  {}".format("mutation", "result", "time", "tests / detail"))
    print("-" * 100)
    for m, verdict, secs, detail in results:
        tests = " ".join(f"{k}:{p}" for k, p in m.tests)
        print(f"{m.name:45} {verdict:9} {secs:6.1f}s  {tests}")
        if verdict not in ("killed", "survived") and detail:
            print("    " + detail.strip().replace("\n", "\n    ")[:1500])
    killed = sum(1 for _, v, _, _ in results if v == "killed")
    judged = sum(1 for _, v, _, _ in results if v in ("killed", "survived"))
    problems = [m.name for m, v, _, _ in results if v != "killed"]
    score = 100.0 * killed / judged if judged else 0.0
    print(f"\nmutation score: {killed}/{judged} killed ({score:.0f} %); "
          f"{len(results) - judged} not judged (stale, not building, or failing unmutated); "
          f"{time.monotonic() - started:.0f} s")
    if problems:
        print("not killed: " + ", ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
