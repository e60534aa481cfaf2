#!/usr/bin/env bash
# tests/compat/check_symbols.sh OURS [SYSTEM]: every symbol the system's libsigsegv.so.2 exports is
# exported by faultline's, and faultline's has the same soname.
set -euo pipefail
ours=$1
system=${2:-$(ldconfig -p | awk '/libsigsegv\.so\.2 .*x86-64/ && !found {print $NF; found = 1}')}
if [ -z "$system" ] || [ ! -e "$system" ]; then
  echo "system libsigsegv.so.2 not found (install libsigsegv2)" >&2
  exit 1
fi
exports() { nm -D --defined-only "$1" | awk '$2 ~ /[TDBRVW]/ {print $3}' | sed 's/@.*//' | sort -u; }
missing=$(comm -23 <(exports "$system") <(exports "$ours"))
if [ -n "$missing" ]; then
  echo "faultline's libsigsegv lacks: $missing" >&2
  exit 1
fi
soname() { objdump -p "$1" | awk '/SONAME/ {print $2}'; }
if [ "$(soname "$ours")" != "$(soname "$system")" ]; then
  echo "soname $(soname "$ours") differs from $(soname "$system")" >&2
  exit 1
fi
echo "all $(exports "$system" | wc -l) symbols of $system are exported by $ours; soname $(soname "$ours")"
