# bench-lib.sh: what the bench's peer scripts share, sourced by them
# (". scripts/bench-lib.sh"): finding the processes a peer started, and
# ending them. A process is named "PID:START", its pid and its start time
# (field 22 of /proc/PID/stat), so that a later process given the same pid
# is never taken for it.

# tree PID - PID and all its descendants, as PID:START, one a line.
tree() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { kids[$2] = kids[$2] " " $1 }
        END {
            todo = root
            while (todo != "") {
                n = split(todo, a, " "); todo = ""
                for (i = 1; i <= n; i++) { print a[i]; todo = todo kids[a[i]] }
            }
        }' | while read -r _p; do
        _st=$(cut -d' ' -f22 "/proc/$_p/stat" 2>/dev/null) && echo "$_p:$_st"
    done
}

# alive PID:START - the same process still runs (a zombie, exited but not
# yet reaped, does not count).
alive() {
    set -- "${1%%:*}" "${1#*:}"
    [ "$(cut -d' ' -f22 "/proc/$1/stat" 2>/dev/null)" = "$2" ] &&
        [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# wait_gone PID:START... - wait until every process listed has exited,
# after it was asked to: a master stops its children within a few
# seconds; after 5 s what is left gets a TERM, after 10 s a KILL; false
# if one still runs after 15 s.
wait_gone() {
    _i=0
    for _ps in "$@"; do
        while alive "$_ps"; do
            _i=$((_i + 1))
            if [ $_i = 50 ] || [ $_i = 100 ]; then
                for _q in "$@"; do
                    alive "$_q" || continue
                    if [ $_i = 50 ]; then kill "${_q%%:*}" 2>/dev/null || true
                    else kill -9 "${_q%%:*}" 2>/dev/null || true; fi
                done
            fi
            if [ $_i -ge 150 ]; then
                echo "process ${_ps%%:*} did not exit" >&2
                return 1
            fi
            sleep 0.1
        done
    done
}
