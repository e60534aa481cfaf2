#!/usr/bin/env bash
# tests/skip_when_cross.sh REASON COMMAND...: in a cross build under qemu-user, the tests that cannot run
# there are registered through this script: it prints why and exits 77 (CTest: skipped).
echo "skipped in a cross build under qemu-user: $1"
exit 77
