#!/bin/sh
# Unregister a drained Grid Engine exec host: stop its execd, take it out of
# every host group and every queue's per-host settings, then off the exec,
# submit and admin host lists. Prints "changed" when it changed anything.
# Usage: sge-unregister-host.sh HOST  (on the qmaster, as a manager)
set -eu
host=$1
changed=no

# The words of qconf's output, one a line (continuation lines joined).
words() { "$@" 2>/dev/null | tr -d '\\' | tr -s ' \t' '\n\n'; }

if words qconf -sel | grep -qx "$host"; then
    # The host is drained; an execd that is already gone is fine.
    qconf -ke "$host" >/dev/null 2>&1 || true
fi
for group in $(qconf -shgrpl 2>/dev/null); do
    if words qconf -shgrp "$group" | grep -qx "$host"; then
        qconf -dattr hostgroup hostlist "$host" "$group" >/dev/null
        changed=yes
    fi
done
for queue in $(qconf -sql 2>/dev/null); do
    if qconf -sq "$queue" | grep -q "\[$host="; then
        qconf -purge queue '*' "$queue@$host" >/dev/null
        changed=yes
    fi
done
if words qconf -sel | grep -qx "$host"; then
    qconf -de "$host" >/dev/null
    changed=yes
fi
if words qconf -ss | grep -qx "$host"; then
    qconf -ds "$host" >/dev/null
    changed=yes
fi
if words qconf -sh | grep -qx "$host"; then
    qconf -dh "$host" >/dev/null
    changed=yes
fi
[ "$changed" = yes ] && echo changed
exit 0
