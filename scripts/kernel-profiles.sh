#!/usr/bin/env bash
# scripts/kernel-profiles.sh: the test suite as on the kernels users run (faultline/kernel_mask.hpp), and
# once as an unprivileged user. Run by .ci/run after the README's test command, on its build
# (build/default).
#
#   scripts/kernel-profiles.sh [PROFILE...]     default: 6.1 5.15 none unprivileged user
#
# Each profile is its own ctest run with FAULTLINE_KERNEL set; "user" runs the suite as the user nobody
# (whatever vm.unprivileged_userfaultfd says on this machine decides what it gets). Before each run the
# script checks that the mask is in force (`faultline info --json` reports it), so a typo cannot pass as
# an unmasked run. After each, it prints how many tests ran, how many were skipped, and why (the skip
# messages, counted). Exits non-zero when any run fails. The tests labelled `cluster` (a Redis Cluster the
# plain run starts and stops) are left out: the store's code does not depend on the kernel's features,
# and the regions under it are the ones the other tests cover on every profile. So are the Rust crates
# (label `rust`): a binding, whose calls the C API test covers on every profile.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/default
cli=$build/tools/faultline/faultline
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(6.1 5.15 none unprivileged user)

summary() {  # $1: label, $2: the LastTest.log of the run
  python3 - "$1" "$2" <<'EOF'
import collections, re, sys
label, log = sys.argv[1], sys.argv[2]
text = open(log, errors="replace").read()
ran = skipped = 0
why = collections.Counter()
for name, body in re.findall(r"\n\d+/\d+ Testing: (.*?)\n(.*?)(?=\n\d+/\d+ Testing: |\Z)", text, re.S):
    ran += 1
    if "Skip regular expression found" in body:
        skipped += 1
        m = re.search(r": Skipped\n(.*?)\n", body)
        reason = m.group(1).strip() if m else "(no reason printed)"
        why[re.sub(r"\b\d{2,}\b", "N", reason)] += 1
print(f"[{label}] {ran} tests: {ran - skipped} ran, {skipped} skipped")
for reason, n in why.most_common():
    print(f"[{label}]   {n:3} skipped: {reason}")
EOF
}

# Not in the unprivileged run: tests of the build and install rather than of faultline's behaviour, which
# need root's files (the Python under root's home, the install manifest) or root itself (a setgid binary).
root_only='^(secure_environment|include_layers|include_layers_rejects_a_violation|bench_json|install_consumer|readme_code|packages|man_pages|mutation_snippets|abi)$'

status=0
for p in "${profiles[@]}"; do
  echo "=== kernel profile: $p"
  if [ "$p" = user ]; then
    if [ "$(id -u)" != 0 ]; then echo "(already unprivileged: the plain run is this run)"; continue; fi
    # ctest writes its logs in the build tree: let the user write there, nowhere else.
    chmod -R a+rwX "$build/Testing" 2>/dev/null || { mkdir -p "$build/Testing"; chmod -R a+rwX "$build/Testing"; }
    echo "vm.unprivileged_userfaultfd = $(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null || echo '?')"
    setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env -- \
      env PATH="$PATH" HOME=/tmp TMPDIR=/tmp "$cli" info | sed -n '/^capabilities/,$p'
    if ! setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env -- \
        env PATH="$PATH" HOME=/tmp TMPDIR=/tmp ctest --test-dir "$build" -j2 --timeout 300 -E "$root_only" -LE "cluster|rust"; then
      status=1
    fi
  else
    got=$(FAULTLINE_KERNEL="$p" "$cli" info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["kernel_mask"])')
    if [ "$got" != "$p" ]; then echo "FAULTLINE_KERNEL=$p is not in force (faultline info says '$got')"; exit 1; fi
    if ! FAULTLINE_KERNEL="$p" ctest --test-dir "$build" -j2 --timeout 300 -LE "cluster|rust"; then status=1; fi
  fi
  summary "$p" "$build/Testing/Temporary/LastTest.log"
done
exit $status
