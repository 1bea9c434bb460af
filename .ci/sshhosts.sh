#!/bin/bash
# sshhosts.sh - fake SSH hosts for tests: real OpenSSH sshd processes (root, Debian 12). Usage:
#   setup | loop-up N [FIRST] | loop-down | kill|freeze|thaw 127.0.0.I
#   ns-up N [SSHD_N] | ns-down | start|kill|cut|restore thI
# State (keys, authorized_keys, known_hosts, sshd_config, NAME.log sshd logs, NAME.pid) lives in
# $SSHHOSTS_DIR (default /tmp/sshhosts); clients log in as root with $SSHHOSTS_DIR/client.
# Loopback hosts: 127.0.0.FIRST .. 127.0.0.(FIRST+N-1) (FIRST defaults to 2), port 2222, each sshd
# pid 1 of its own pid namespace; freeze/thaw SIGSTOP/SIGCONT every process in it (TCP connects
# are accepted, the SSH handshake and open sessions hang). Netns hosts: thI = 10.99.0.1I:22
# (I=1..N) behind bridge thbr = 10.99.0.1; cut/restore drop/pass their packets.
# SSHHOSTS_PRIVATE="DIR..." (loop-up, ns-up, start): each host's sshd runs in a mount namespace of
# its own with an empty tmpfs over each DIR (which must exist), so what a host writes there stays
# private to it (e.g. an upload into the environment's base directory); the rest is shared.
# SSHHOSTS_NORC=1 (loop-up, ns-up, start): sessions skip root's ~/.bashrc (here it runs `pyenv init`, 0.25 s
# idle and over a second under load, for every session).
# Run loop-down/ns-down in a trap.
set -euo pipefail
D=${SSHHOSTS_DIR:-/tmp/sshhosts}; SSHD=/usr/sbin/sshd; K="$(cut -d' ' -f1,2 $D/hostkey.pub 2>/dev/null || true)"
PRIV=${SSHHOSTS_PRIVATE:-}
NORC=; [ -z "${SSHHOSTS_NORC:-}" ] || NORC=" SHLVL=1"   # bash runs ~/.bashrc for ssh commands only at SHLVL<2
waitport() { timeout 5 bash -c "until exec 3<>/dev/tcp/$1/$2; do sleep 0.05; done" 2>/dev/null; }
waitgone() { timeout 5 bash -c "while exec 3<>/dev/tcp/$1/$2; do sleep 0.05; done" 2>/dev/null || true; }
killns() { for n in 1 2 3 4 5; do p=$(ip netns pids $1); [ -z "$p" ] && return; kill -KILL $p || true; sleep 0.1; done; }
# mounts: shell commands that put a tmpfs over each private directory (run inside the new mount ns).
mounts() { local m=":" d; for d in $PRIV; do m="$m; mount -t tmpfs -o mode=0755 shaddock-private '$d'"; done; echo "$m"; }
# nspids ADDR: every process in loopback host ADDR's pid namespace.
nspids() {
  local ns; ns=$(readlink /proc/$(cat $D/$1.pid)/ns/pid_for_children); ns=${ns#pid:[}; ns=${ns%]}
  { stat -L -c '%i %n' /proc/[0-9]*/ns/pid 2>/dev/null || true; } | awk -v ns=$ns '$1 == ns { split($2, p, "/"); print p[3] }'
}
case $1 in
setup)
  [ -x $SSHD ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; }
  mkdir -p -m 0755 /run/sshd; mkdir -p $D          # sshd refuses to start without /run/sshd
  [ -f $D/hostkey ] || ssh-keygen -q -t ed25519 -N '' -C testhost -f $D/hostkey
  [ -f $D/client ]  || ssh-keygen -q -t ed25519 -N '' -C client -f $D/client
  cp $D/client.pub $D/authorized_keys; : > $D/known_hosts
  printf '%s\n' "HostKey $D/hostkey" "AuthorizedKeysFile $D/authorized_keys" \
    "PermitRootLogin prohibit-password" "PasswordAuthentication no" "KbdInteractiveAuthentication no" \
    "UsePAM no" "StrictModes no" "UseDNS no" "PrintMotd no" "MaxStartups 100" "MaxSessions 64" > $D/sshd_config
  $SSHD -t -f $D/sshd_config ;;
loop-up)   # hosts 127.0.0.FIRST .. 127.0.0.(FIRST+N-1), port 2222, each sshd = pid 1 of its own pid namespace
  first=${3:-2}
  for i in $(seq $first $(($first+$2-1))); do a=127.0.0.$i
    setsid unshare --pid --fork --kill-child --mount-proc --propagation private sh -c \
      "$(mounts); exec $SSHD -D -f $D/sshd_config -o ListenAddress=$a:2222 -o PidFile=none -o 'SetEnv=TESTHOST=$a$NORC' -E $D/$a.log" \
      </dev/null >/dev/null 2>&1 &
    echo $! > $D/$a.pid; echo "[$a]:2222 $K" >> $D/known_hosts; waitport $a 2222
  done ;;
loop-down) for f in $D/127.*.pid; do [ -f $f ] || continue; kill -KILL $(cat $f) 2>/dev/null || true; rm -f $f; done ;;
freeze)    p=$(nspids $2); [ -z "$p" ] || kill -STOP $p ;;
thaw)      p=$(nspids $2); [ -z "$p" ] || kill -CONT $p ;;
ns-up)     # hosts thI = 10.99.0.1I (I=1..N) in netns thI, bridge thbr = 10.99.0.1; sshd in th1..thSSHD_N
  ip link add thbr type bridge; ip addr add 10.99.0.1/24 dev thbr; ip link set thbr up
  for i in $(seq 1 $2); do h=th$i
    ip netns add $h; ip link add v$h type veth peer name eth0 netns $h
    ip link set v$h master thbr up; ip -n $h addr add 10.99.0.1$i/24 dev eth0
    ip -n $h link set lo up; ip -n $h link set eth0 up
    echo "10.99.0.1$i $K" >> $D/known_hosts
    [ $i -le ${3:-$2} ] && bash "$0" start $h
  done; true ;;
start)     # (re)start sshd in host thI, with its own hostname (and private directories)
  a=10.99.0.1${2#th}
  ip netns exec $2 unshare --uts --mount --propagation private sh -c \
    "hostname $2; $(mounts); exec $SSHD -f $D/sshd_config -o ListenAddress=$a:22 -o PidFile=$D/$2.pid ${NORC:+-o SetEnv=SHLVL=1} -E $D/$2.log"
  waitport $a 22 ;;
ns-down)
  for h in $(ip netns list | awk '/^th[0-9]+/{print $1}'); do
    killns $h; ip link del v$h 2>/dev/null || true; ip netns del $h; rm -f $D/$h.pid
  done; ip link del thbr 2>/dev/null || true ;;
kill)    case $2 in 127.*) kill -KILL $(cat $D/$2.pid) || true; waitgone $2 2222 ;; *) killns $2 ;; esac ;;
cut)     ip link set v$2 down ;;      # packets dropped, no RST: connects and open sessions hang
restore) ip link set v$2 up ;;        # after `kill`, use `start` instead
*) sed -n '2,5p' "$0" >&2; exit 2 ;;
esac
