# Helpers sourced by the benchmark scripts of tools/bench.

# busy_pct prints the machine's busy CPU over the next 2 seconds, in percent
# of one core (200 = two cores busy), from /proc/stat.
busy_pct() {
  local _ u n s i w q sq st t1 i1 t2 i2
  read -r _ u n s i w q sq st _ </proc/stat
  t1=$((u + n + s + i + w + q + sq + st)); i1=$((i + w))
  sleep 2
  read -r _ u n s i w q sq st _ </proc/stat
  t2=$((u + n + s + i + w + q + sq + st)); i2=$((i + w))
  if [ "$t2" -le "$t1" ]; then echo 0; return; fi
  echo $(( 100 * $(nproc) * ((t2 - t1) - (i2 - i1)) / (t2 - t1) ))
}

# wait_quiet waits (at most QUIET_MAX seconds, default 120) until the machine
# is nearly idle (busy <= QUIET_PCT percent of a core, default 20): the robot
# shares the CPUs with the servers under test, and other work on a shared
# machine skews every figure. QUIET_MAX=0 disables the wait. It measures
# anyway once the time is up, and says so; the robot's "other CPU %" column
# shows how much the run was disturbed.
wait_quiet() {
  local max="${QUIET_MAX:-120}" pct="${QUIET_PCT:-20}" p deadline
  [ "$max" -gt 0 ] || return 0
  deadline=$((SECONDS + max))
  while :; do
    p="$(busy_pct)"
    [ "$p" -le "$pct" ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "machine still busy (${p}% of a core) after ${max}s; measuring anyway" >&2
      return 0
    fi
    echo "machine busy (${p}% of a core); waiting for it to settle" >&2
  done
}

# Scheduling: with the kernel's autogroups (sched_autogroup_enabled=1, the
# Debian default) CPU time is shared first between sessions, then between
# their threads. The master starts each server in a session of its own
# (setsid), Pomelo's development mode and older shaddock builds keep every
# server in the master's session, and the robot is in the shell's: the same
# code then gets a different share of the two cores depending on how it was
# launched, and a closed loop's throughput and CPU per request follow that
# share (the robot starved at 1/6 of the machine sends less, so less is
# batched). sched_neutral turns autogroups off for the run, so every thread
# of every system competes alike, and sched_restore puts the setting back.
SCHED_AUTOGROUP_SAVED=""
sched_neutral() {
  local f=/proc/sys/kernel/sched_autogroup_enabled
  [ "${SCHED_NEUTRAL:-1}" = 1 ] && [ -w "$f" ] || { echo "scheduling: autogroups as they are ($(cat "$f" 2>/dev/null || echo n/a))" >&2; return 0; }
  SCHED_AUTOGROUP_SAVED="$(cat "$f")"
  echo 0 >"$f"
  echo "scheduling: autogroups off for the run (was $SCHED_AUTOGROUP_SAVED; SCHED_NEUTRAL=0 keeps them)" >&2
}
sched_restore() {
  [ -n "$SCHED_AUTOGROUP_SAVED" ] || return 0
  echo "$SCHED_AUTOGROUP_SAVED" >/proc/sys/kernel/sched_autogroup_enabled
  SCHED_AUTOGROUP_SAVED=""
}
