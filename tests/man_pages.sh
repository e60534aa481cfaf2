#!/usr/bin/env bash
# tests/man_pages.sh DIR: every man page faultline generates (DIR/*.1) renders with `man -l`, and says
# what its command's own --help says (they are generated from it).
set -uo pipefail
dir=$1
failures=0
count=0
for page in faultline faultline-info faultline-bench faultline-catch faultline-symbolize; do
  f="$dir/$page.1"
  if [ ! -s "$f" ]; then echo "missing: $f"; failures=$((failures + 1)); continue; fi
  out=$(MANWIDTH=100 man -l -P cat "$f" 2>&1) || { echo "man -l $f failed: $out"; failures=$((failures + 1)); continue; }
  grep -q "^NAME" <<<"$out" && grep -q "^SYNOPSIS\|^DESCRIPTION" <<<"$out" || { echo "$page: no NAME/DESCRIPTION: $out"; failures=$((failures + 1)); }
  count=$((count + 1))
done
grep -q "PROGRAM gets exactly its arguments" <(MANWIDTH=200 man -l -P cat "$dir/faultline-catch.1" 2>/dev/null | tr -s ' \n' ' ') \
  || { echo "faultline-catch.1 lacks catch's help text"; failures=$((failures + 1)); }
grep -q -- "--as" <(man -l -P cat "$dir/faultline-info.1" 2>/dev/null) || { echo "faultline-info.1 lacks --as"; failures=$((failures + 1)); }
echo "$count man pages rendered"
exit $((failures != 0))
