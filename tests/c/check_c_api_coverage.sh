#!/usr/bin/env bash
# tests/c/check_c_api_coverage.sh: the C interface test calls every function the C header declares.
#
# Usage: check_c_api_coverage.sh HEADER TEST_SOURCE
# Lists the functions HEADER declares (lines that declare `fl_name(` outside typedefs and comments) and
# fails, naming them, if any is never called in TEST_SOURCE (`fl_name(` appearing there). Run as the
# ctest test c_api_coverage; c_api_coverage_rejects_a_gap runs it on a fixture that misses calls and
# must fail.
set -euo pipefail
header=$1
source=$2
[[ -r $header && -r $source ]] || { echo "usage: $0 HEADER TEST_SOURCE" >&2; exit 2; }

# Declarations: drop comments, then take the identifier before the first '(' of each non-typedef line
# that starts a declaration (return type, then fl_name).
declared=$(sed -e 's://.*$::' -e 's:/\*.*\*/::g' "$header" |
           grep -vE '^\s*(typedef|#|\*|/\*)' |
           grep -oE '^[A-Za-z_][A-Za-z0-9_ ]*[ *]+fl_[a-z0-9_]+\(' |
           grep -oE 'fl_[a-z0-9_]+\($' | tr -d '(' | sort -u)
count=$(wc -w <<<"$declared")
if (( count < 10 )); then
  echo "check_c_api_coverage: found only $count declarations in $header; the parser is broken" >&2
  exit 2
fi
missing=()
for fn in $declared; do
  grep -qE "\\b${fn}\\s*\\(" "$source" || missing+=("$fn")
done
if (( ${#missing[@]} > 0 )); then
  echo "check_c_api_coverage: $source never calls ${#missing[@]} of the $count functions in $header:"
  printf '  %s\n' "${missing[@]}"
  exit 1
fi
echo "check_c_api_coverage: all $count functions declared in $header are called in $source"
