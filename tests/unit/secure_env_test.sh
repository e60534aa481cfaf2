#!/usr/bin/env bash
# tests/unit/secure_env_test.sh PROBE: faultline's environment variables change an ordinary program and
# are ignored in a privileged one (setgid here: AT_SECURE), as glibc's secure_getenv ignores them.
set -euo pipefail
probe=$1
export FAULTLINE_REPORT=1 FAULTLINE_INJECT="mmap:1000:ENOMEM"
plain=$("$probe")
echo "plain:   $plain"
[[ $plain == "secure 0 report on injection on" ]] || { echo "the variables did not reach an ordinary program"; exit 1; }
if [ "$(id -u)" != 0 ]; then echo "skipped: making a setgid copy needs root"; exit 0; fi
dir=$(mktemp -d "$(dirname "$probe")/secure-env.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cp "$probe" "$dir/probe"
chgrp nogroup "$dir/probe"
chmod g+s "$dir/probe"
priv=$("$dir/probe")
echo "setgid:  $priv"
if [[ $priv == "secure 0 "* ]]; then echo "skipped: the file system ignores setgid here (nosuid)"; exit 0; fi
[[ $priv == "secure 1 report off injection off" ]] || { echo "a privileged program took the variables"; exit 1; }
