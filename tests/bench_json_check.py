#!/usr/bin/env python3
"""tests/bench_json_check.py: runs `faultline bench --quick --json` and checks its output.

Checks that the JSON validates against docs/bench-schema.json, that every section ran (each has at least
one row), that every measured row has one sample per round and a ratio, and that every row that is not
measured says why. It asserts no speed.
"""
import json
import subprocess
import sys
import tempfile

import jsonschema

SECTIONS = ["trap", "regions", "userfaultfd", "file", "dirty", "threads", "emulation"]


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
    for section in ("trap", "regions"):
        if not any(r["section"] == section and r["measured"] for r in doc["rows"]):
            problems.append(f"section {section} measured nothing")
    for p in problems:
        print("bench_json_check:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
