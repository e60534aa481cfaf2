#!/usr/bin/env bash
# check-signal-path.sh OBJECT...: audits the objects of faultline's signal path.
#
# Lists every symbol the objects reference but do not define among themselves, and fails on any that is
# not on the allow-list below: malloc/free/new/delete, stdio, pthread mutexes, __tls_get_addr (lazy TLS),
# C++ exception machinery, or any faultline function that lives outside the signal path.
# NM: the nm that reads the objects' architecture (CMake passes its CMAKE_NM: aarch64-linux-gnu-nm when
# cross-building).
set -euo pipefail
if [ $# -eq 0 ]; then echo "usage: $0 OBJECT..." >&2; exit 2; fi
NM=${NM:-nm}

# What signal-path code may call outside its own objects, and why it is safe there.
allow=(
  '_GLOBAL_OFFSET_TABLE_'           # linker-provided
  '__errno_location'                # saving/restoring errno: returns a TLS address, initial-exec
  'getauxval'                       # reads the auxiliary vector; no locks, no allocation
  'memcpy' 'memmove' 'memset' 'memcmp' 'strlen'  # emitted by the compiler for plain loops/copies
  '__stack_chk_fail'                # stack protector
  '_UL[a-z0-9_]+_(init_local2|step|get_reg)'  # libunwind's local unwinder (report); not get_proc_name, which mallocs
  'Zydis[A-Za-z0-9_]*'              # the instruction decoder: decodes without allocating
  '_ZN4absl[0-9a-z_]*18debugging_internal8DemangleEPKcPci'  # abseil's demangler: async-signal-safe, no allocation
  '__memcpy_chk' '__memset_chk' '__memmove_chk'  # _FORTIFY_SOURCE's checked copies (Debian's flags): no locks, no allocation
  '__aarch64_(cas|swp|ldadd|ldclr|ldeor|ldset)[0-9]+_(relax|acq|rel|acq_rel)'  # aarch64: libgcc's outline atomics
                                    # (-moutline-atomics): leaf functions choosing LSE or LL/SC; no locks
)
pattern="^($(IFS='|'; echo "${allow[*]}"))\$"

defined=$("$NM" --defined-only --no-demangle "$@" | awk 'NF>=3 {print $3}' | sort -u)
undefined=$("$NM" -u --no-demangle "$@" | awk '/ U / {print $2}' | sort -u)
bad=()
for sym in $undefined; do
  if grep -qxF -- "$sym" <<<"$defined"; then continue; fi
  if [[ $sym =~ $pattern ]]; then continue; fi
  bad+=("$sym")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "signal-path objects reference symbols outside the allow-list:" >&2
  for sym in "${bad[@]}"; do
    users=$(for o in "$@"; do "$NM" -u --no-demangle "$o" | grep -qw -- "$sym" && basename "$o"; done | tr '\n' ' ')
    printf '  %s (%s) used by: %s\n' "$sym" "$(c++filt -- "$sym")" "$users" >&2
  done
  exit 1
fi
echo "signal path: $# objects, $(wc -w <<<"$undefined") external references, all allowed"
