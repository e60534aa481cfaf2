#!/usr/bin/env bash
# tests/check_exit_and_output.sh: runs a program and passes only if it exits 0 AND its output (stdout and
# stderr) matches an extended regular expression. ctest's PASS_REGULAR_EXPRESSION alone would ignore
# the exit status, dropping the program's own checks.
#
# Usage: check_exit_and_output.sh REGEX PROGRAM [ARGS...]
# A program that exits 77 has skipped itself: that status is passed on (SKIP_RETURN_CODE 77).
set -uo pipefail
regex=$1
shift
output=$("$@" 2>&1)
status=$?
printf '%s\n' "$output"
if (( status == 77 )); then
  exit 77  # the program skipped itself and said why (tests set SKIP_RETURN_CODE 77)
fi
if (( status != 0 )); then
  echo "check_exit_and_output: $1 exited with status $status" >&2
  exit 1
fi
if ! grep -qE -- "$regex" <<<"$output"; then
  echo "check_exit_and_output: the output does not match: $regex" >&2
  exit 1
fi
