#!/bin/sh
# apt-install.sh COMMAND PACKAGE...: install PACKAGEs from Debian when COMMAND is missing,
# so that `make test` works on a fresh machine; otherwise say what is needed.
set -e
command="$1"; shift
command -v "$command" >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # `make -j` may run several installs at once: one apt at a time.
    exec 8>/var/lock/logdriver-apt.lock
    flock 8
    command -v "$command" >/dev/null 2>&1 && exit 0
    echo "installing $* for $command" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null || {
        apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
    exit 0
fi
echo "$command is needed: install $* (apt-get install -y $*)" >&2
exit 1
