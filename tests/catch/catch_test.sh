#!/usr/bin/env bash
# tests/catch/catch_test.sh CLI DIR LIB: `faultline catch` on programs of DIR (built from tests/catch/);
# LIB is the preload library (for a report written in-process, then `faultline symbolize`).
set -uo pipefail
cli=$1
dir=$2
lib=$3
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }

# 1. A crash inside a shared library: the report names the signal and the library's function, and
#    catch ends by the same signal.
out=$("$cli" catch --no-color -- "$dir/prog_library_crash" 2>&1); st=$?
[ $st -eq $((128 + 11)) ] || fail "library crash: status $st, expected killed by SIGSEGV (139)"
grep -q "about to crash" <<<"$out" || fail "library crash: the program's own output is missing"
grep -q '\*\*\* faultline: fatal signal: SIGSEGV (SEGV_MAPERR)' <<<"$out" || fail "library crash: no report headline"
grep -q "address   0x10" <<<"$out" || fail "library crash: fault address 0x10 not reported"
grep -q "faultline_test_crash_in_library" <<<"$out" || fail "library crash: backtrace lacks the library function"
grep -q "libfaultline_test_crashlib.so" <<<"$out" || fail "library crash: backtrace lacks the library's name"

# 2. A program with its own SIGSEGV handler: its handler runs, the report is written, and catch ends by
#    SIGSEGV.
out=$("$cli" catch --no-color -- "$dir/prog_own_handler" 2>&1); st=$?
[ $st -eq 139 ] || fail "own handler: status $st, expected 139"
grep -q "own handler ran" <<<"$out" || fail "own handler: the program's handler did not run"
grep -q '\*\*\* faultline: fatal signal (the program.s own handler gave up): SIGSEGV' <<<"$out" \
  || fail "own handler: no report"
grep -q "address   0x8" <<<"$out" || fail "own handler: fault address 0x8 not reported"

# 3. Exit statuses pass through; no report without a crash.
out=$("$cli" catch -- "$dir/prog_exit" 3 2>&1); st=$?
[ $st -eq 3 ] || fail "exit status: $st, expected 3"
grep -q "faultline" <<<"$out" && fail "exit status: unexpected report: $out"

# 4. --fd 1 sends the report to standard output.
out=$("$cli" catch --fd 1 --no-color -- "$dir/prog_library_crash" 2>/dev/null); st=$?
grep -q '\*\*\* faultline: fatal signal: SIGSEGV' <<<"$out" || fail "--fd 1: report not on stdout"

# 5. Errors: no program, a program that does not exist.
"$cli" catch >/dev/null 2>&1 && fail "catch without a program succeeded"
out=$("$cli" catch -- /nonexistent/program 2>&1); st=$?
[ $st -eq 127 ] || fail "missing program: status $st, expected 127"
grep -q "cannot run /nonexistent/program" <<<"$out" || fail "missing program: no message"

# 6. SIGABRT: abort(), a failed assert and an uncaught exception are reported (the exception's type and
#    what()), and catch ends by SIGABRT.
for how in abort assert throw throw-int; do
  out=$("$cli" catch --no-color -- "$dir/prog_abort" "$how" 2>&1); st=$?
  [ $st -eq $((128 + 6)) ] || fail "$how: status $st, expected killed by SIGABRT (134)"
  grep -q "about to $how" <<<"$out" || fail "$how: the program's own output is missing"
  grep -q '\*\*\* faultline: fatal signal: SIGABRT' <<<"$out" || fail "$how: no report headline: $out"
done
out=$("$cli" catch --no-color -- "$dir/prog_abort" throw 2>&1)
grep -q 'uncaught exception of type std::runtime_error: what(): disk on fire' <<<"$out" \
  || fail "throw: the exception's type and what() are not named: $out"
out=$("$cli" catch --no-color -- "$dir/prog_abort" throw-int 2>&1)
grep -q 'uncaught exception of type int \*\*\*' <<<"$out" || fail "throw-int: the exception's type is not named: $out"

# 7. Where preloading cannot work (a static program; one that is setuid to someone else), catch says
#    so plainly, and the program still runs with its own exit status.
out=$("$cli" catch -- "$dir/prog_static" 5 2>&1); st=$?
[ $st -eq 5 ] || fail "static: status $st, expected 5"
grep -q "it is statically linked: there is no loader to preload faultline" <<<"$out" || fail "static: no warning: $out"
out=$("$cli" catch -- "$dir/prog_exit" 0 2>&1)
grep -q "runs without the crash report" <<<"$out" && fail "a dynamic program was warned about: $out"
if [ "$(id -u)" = 0 ]; then
  tmp=$(mktemp -d)
  cp "$dir/prog_exit" "$tmp/prog_setuid" && chown nobody "$tmp/prog_setuid" && chmod 4755 "$tmp/prog_setuid"
  out=$("$cli" catch -- "$tmp/prog_setuid" 0 2>&1)
  grep -q "it is setuid: the loader ignores LD_PRELOAD" <<<"$out" || fail "setuid: no warning: $out"
  rm -rf "$tmp"
fi

# 8. The program gets exactly its arguments: everything after --, or from the first word that is not
#    one of catch's options; its own --help, --, empty strings and spaces included.
expect_args() {  # $1: what is checked; $2: the expected output; the rest: catch's arguments
  local what=$1 want=$2
  shift 2
  local got
  got=$("$cli" catch "$@" 2>&1); local st=$?
  [ $st -eq 0 ] || fail "argv ($what): status $st: $got"
  [ "$got" = "$want" ] || fail "argv ($what): got <$got>, expected <$want>"
}
expect_args "after --" $'[a]\n[b]' -- "$dir/prog_argv" a b
expect_args "options reordered" $'[x]\n[-c]\n[y]\n[--zz]' "$dir/prog_argv" x -c y --zz
expect_args "the program's --help" '[--help]' "$dir/prog_argv" --help
expect_args "--, empty, spaces" $'[--]\n[]\n[a b]' --no-color -- "$dir/prog_argv" -- "" "a b"
expect_args "catch's option names" $'[--fd]\n[3]\n[--no-color]' --fd 2 "$dir/prog_argv" --fd 3 --no-color
"$cli" catch --bogus "$dir/prog_argv" >/dev/null 2>&1 && fail "an unknown catch option was accepted"
"$cli" catch --help | grep -q "PROGRAM gets exactly its arguments" || fail "catch --help"

# 9. Readable reports. Under catch: full C++ names (template arguments too), file:line from the debug
#    information, the thread's name. In-process (no parent to symbolize): demangled names (abseil's
#    demangler leaves out template arguments) and module+offset; `faultline symbolize` then gives what
#    catch gives.
out=$("$cli" catch --no-color -- "$dir/prog_cxx_crash" 2>&1); st=$?
[ $st -eq 139 ] || fail "c++ crash: status $st, expected 139"
grep -q 'in app::Box<int>::poke(int\*) at .*prog_cxx_crash.cpp:11 ' <<<"$out" || fail "catch: no full name with file:line: $out"
grep -q 'in thread [0-9]* "poker" of process' <<<"$out" || fail "catch: no thread name: $out"
grep -q '_M_run() at .*prog_cxx_crash.cpp:20 ' <<<"$out" || fail "catch: the thread's lambda has no file:line: $out"
saved=$(mktemp)
LD_PRELOAD="$lib" FAULTLINE_CATCH_FD=2 FAULTLINE_CATCH_COLOR=0 "$dir/prog_cxx_crash" >"$saved" 2>&1
grep -q 'in app::Box<>::poke()+0x' "$saved" || fail "in-process: no demangled name: $(cat "$saved")"
grep -q "($dir/prog_cxx_crash+0x" "$saved" || fail "in-process: no module+offset: $(cat "$saved")"
out=$("$cli" symbolize "$saved"); st=$?
[ $st -eq 0 ] || fail "symbolize: status $st"
grep -q 'in app::Box<int>::poke(int\*) at .*prog_cxx_crash.cpp:11 ' <<<"$out" || fail "symbolize: no full name with file:line: $out"
[ "$(wc -l <<<"$out")" -eq "$(wc -l <"$saved")" ] || fail "symbolize: lines added or lost"
out=$("$cli" symbolize <"$saved")
grep -q 'prog_cxx_crash.cpp:11' <<<"$out" || fail "symbolize from standard input"
rm -f "$saved"

# 10. --stats: at the program's exit, faultline's counters (three faults its own handler recovered
#     from, passed on to it); nothing of the kind without --stats.
out=$("$cli" catch --stats -- "$dir/prog_recovers" 2>&1); st=$?
[ $st -eq 0 ] || fail "--stats: status $st: $out"
grep -q "recovered 3" <<<"$out" || fail "--stats: the program's output is missing: $out"
grep -q "faultline stats: SIGSEGV: 3 seen, 0 resolved, 3 passed on, 0 stack overflows" <<<"$out" \
  || fail "--stats: no summary of the faults: $out"
out=$("$cli" catch -- "$dir/prog_recovers" 2>&1)
grep -q "faultline stats" <<<"$out" && fail "a summary without --stats: $out"

if [ $failures -ne 0 ]; then
  echo "$failures checks failed"
  exit 1
fi
echo "faultline catch: all checks passed"
