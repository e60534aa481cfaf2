#!/usr/bin/env python3
"""tests/bench_json_check.py: runs `faultline bench --quick --json` and checks its output.

Checks that the JSON validates against docs/bench-schema.json, that every section ran (each has at least
one row), that every measured row has one sample per round and a ratio, and that every row that is not
measured says why. "Not measured" is accepted only where the mechanism (or the baseline library) is
really absent: `faultline info --json` says what this kernel offers (userfaultfd, its SIGBUS,
PAGEFAULT_FLAG_WP and WP_ASYNC features, PAGEMAP_SCAN), and the baselines libsigsegv and Boehm GC are
looked up the way the bench loads them (dlopen); every row whose mechanism is present must be measured.
It asserts no speed.
"""
import ctypes
import json
import os
import subprocess
import sys
import tempfile

import jsonschema

SECTIONS = ["trap", "regions", "userfaultfd", "file", "dirty", "threads", "emulation", "cluster", "floor"]


def library_present(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return False


def requirements(row: dict, info: dict) -> list:
    """What must be present for this row to be measured: a list of (description, present)."""
    section, name, baseline = row["section"], row["name"], row.get("baseline", "")
    uffd = info["region_backend"] == "userfaultfd"
    features = info["userfaultfd"]["features"]
    need = []
    if "libsigsegv" in name:
        need.append(("libsigsegv.so.2 (the baseline)", library_present("libsigsegv.so.2")))
    if "Boehm" in baseline:
        need.append(("libgc.so.1 (the baseline)", library_present("libgc.so.1")))
    if section in ("userfaultfd", "file", "dirty") and (section != "dirty" or "userfaultfd" in name or "WP_ASYNC" in name):
        need.append(("userfaultfd (faultline info: region_backend)", uffd))
    if section == "floor" and "userfaultfd" in name:
        need.append(("userfaultfd (faultline info: region_backend)", uffd))
        if "SIGBUS" in name:
            need.append(("userfaultfd SIGBUS feature", features.get("SIGBUS", False)))
    if section == "cluster":
        need.append(("a Redis Cluster named by FAULTLINE_REDIS_CLUSTER", bool(os.environ.get("FAULTLINE_REDIS_CLUSTER"))))
        need.append(("userfaultfd (faultline info: region_backend)", uffd))
    if "self-service" in name:
        need.append(("userfaultfd SIGBUS feature", features.get("SIGBUS", False)))
    if "WP_ASYNC" in name:
        need.append(("userfaultfd WP_ASYNC feature", features.get("WP_ASYNC", False)))
        need.append(("PAGEMAP_SCAN", info["pagemap_scan"]["available"]))
    if "synchronous write-protect" in name:
        need.append(("userfaultfd PAGEFAULT_FLAG_WP feature", features.get("PAGEFAULT_FLAG_WP", False)))
    return need


def main() -> int:
    cli, schema_path = sys.argv[1], sys.argv[2]
    with tempfile.NamedTemporaryFile(suffix=".json") as out, tempfile.NamedTemporaryFile(suffix=".svg") as svg:
        run = subprocess.run([cli, "bench", "--quick", "--json", out.name, "--svg", svg.name],
                             capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            print(run.stdout, run.stderr)
            return 1
        doc = json.load(open(out.name))
        svg_text = open(svg.name).read()
    info_run = subprocess.run([cli, "info", "--json"], capture_output=True, text=True, timeout=120)
    if info_run.returncode != 0:
        print(info_run.stdout, info_run.stderr)
        return 1
    info = json.loads(info_run.stdout)
    with open(schema_path) as f:
        schema = json.load(f)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    problems = []
    for section in SECTIONS:
        if not any(r["section"] == section for r in doc["rows"]):
            problems.append(f"section {section} has no rows")
    rounds = doc["options"]["rounds"]
    for r in doc["rows"]:
        label = f'{r["section"]}: {r["name"]}'
        if r["measured"]:
            for key in ("baseline_ns", "faultline_ns", "ratios"):
                if len(r[key]) != rounds:
                    problems.append(f"{label}: {len(r[key])} {key} samples, expected {rounds}")
            if "target" in r and "met" not in r["target"]:
                problems.append(f"{label}: a measured row with a target must say whether it is met")
        elif not r.get("reason"):
            problems.append(f"{label}: not measured and no reason")
        if label.split(": ", 1)[1] not in svg_text.replace("&amp;", "&"):
            problems.append(f"{label}: missing from the SVG")
        if r["name"] not in run.stdout:
            problems.append(f"{label}: missing from the table")
    # Verdicts follow the figures: a floor-ratio target is met when faultline / floor meets it, and it
    # is reachable when the floor (or, for a handler-thread row, its bound: the pages made present by
    # another thread) meets it. Handler-thread rows with a floor target carry that bound.
    for r in doc["rows"]:
        t, fl = r.get("target"), r.get("floor")
        if not r["measured"] or not t or t["kind"] != "floor_ratio_at_most" or not fl or "met" not in t:
            continue
        label = f'{r["section"]}: {r["name"]}'
        if t["met"] != (fl["ratio"] <= t["value"]):
            problems.append(f"{label}: met is {t['met']} at {fl['ratio']:.3f}x the floor (target {t['value']})")
        b = r.get("bound")
        if "handler thread" in r["name"] and not b:
            problems.append(f"{label}: a handler-thread row names no bound")
        if b and t["reachable"] != (b["ns"] / fl["ns"] <= t["value"]):
            problems.append(f"{label}: reachable is {t['reachable']} while the bound is "
                            f"{b['ns'] / fl['ns']:.3f}x the floor (target {t['value']})")
    # Every row whose mechanism is present here must be measured; a row that is not must name a
    # mechanism that is really absent.
    for r in doc["rows"]:
        if r["measured"]:
            continue
        missing = [what for what, present in requirements(r, info) if not present]
        if not missing:
            problems.append(f'{r["section"]}: {r["name"]}: not measured ("{r.get("reason", "")}") although '
                            "everything it needs is present here")
    # And what is present shows up as measured rows: userfaultfd regions, file-backed regions and
    # userfaultfd dirty tracking when the kernel offers them.
    present_sections = ["trap", "floor", "regions", "threads", "emulation"]
    if info["region_backend"] == "userfaultfd":
        present_sections += ["userfaultfd", "file"]
        if info["userfaultfd"]["features"].get("WP_ASYNC") and info["pagemap_scan"]["available"]:
            present_sections.append("dirty")
    for section in present_sections:
        if not any(r["section"] == section and r["measured"] for r in doc["rows"]):
            problems.append(f"section {section} measured nothing although its mechanism is present")
    for p in problems:
        print("bench_json_check:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
