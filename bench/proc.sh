# proc.sh: what the shell benchmarks read from /proc about a server, sourced by run-mhd.sh and
# run-h2o.sh. A server is measured as its whole process tree: cwsgi-serve runs a master and its
# workers (the arbiter), so the master's own figures alone would be almost zero.

# tree_pids PID: PID and all its descendants.
tree_pids() {
    echo "$1"
    for c in $(ps -o pid= --ppid "$1" 2> /dev/null); do tree_pids "$c"; done
}

# cpu_ticks PID: user+system CPU time of the process tree, all threads, in clock ticks
# (getconf CLK_TCK per second). The fields are counted after the last ')' so that a command name
# with spaces cannot shift them.
cpu_ticks() {
    for p in $(tree_pids "$1"); do sed 's/.*) //' "/proc/$p/stat" 2> /dev/null; done |
        awk '{n += $12 + $13} END {print n + 0}'
}

# switches PID: context switches of all the tree's threads so far (voluntary and not).
switches() {
    for p in $(tree_pids "$1"); do cat /proc/"$p"/task/*/status 2> /dev/null; done |
        awk '/ctxt_switches/ {n += $2} END {print n + 0}'
}
