#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Stage 2 of a smctrace lab guest, run by stage 1 (init) inside the root assembled from the
# host's filesystem, so every tool here is the host's (ip, rdma, modprobe, the workspace's
# target/debug binaries). It owns the standard SMC-R setup of one guest (modules, address,
# soft-RoCE device, UEID, PNET on 6.1), the start order between the two guests (B's commands
# first, A's once B is ready), and the report of the commands' exit status to the host.
#
# Channels: ttyS0 (the serial log) gets this script's own messages and the kernel's; ttyS1
# gets only the commands' output and, last, one line "@@SMCTRACE-RC <code> <words>".
# Files under /out/.lab/ (the host's --out DIR) carry the configuration and the start order.

LAB=/out/.lab
ROLE=$SMCTRACE_ROLE
. "$LAB/$ROLE.env" || { echo "@@SMCTRACE-RC 125 cannot read $LAB/$ROLE.env" > /dev/ttyS1; echo b > /proc/sysrq-trigger; }
export PATH SMCTRACE_ROLE SMCTRACE_PEER SMCTRACE_OUT SMCTRACE_READY_FILE HOME=/tmp TERM=dumb
SMCTRACE_KERNEL=$(uname -r)
export SMCTRACE_KERNEL
# Recordings name their host: give each guest its own name (lab-a, lab-b).
echo "lab-$ROLE" > /proc/sys/kernel/hostname
OUT=/dev/ttyS1

say() { echo "smctrace-lab[$ROLE] $(cut -d' ' -f1 /proc/uptime)s: $*"; }

finish() {
	# $1 = exit code, rest = words. Tell the peer, tell the host, end the guest at once:
	# a clean poweroff can hang on SMC tasks in D state; QEMU runs with -no-reboot.
	rc=$1; shift
	echo "$rc $*" > "$LAB/$ROLE.done"
	say "finished: rc=$rc $*"
	echo "@@SMCTRACE-RC $rc $*" > $OUT
	sync
	echo b > /proc/sysrq-trigger
	sleep 10
}

step() {
	# Run one setup step, logged on the serial console; a failure ends the guest.
	say "+ $*"
	"$@" || finish 125 "setup failed: $*"
}

stty -F $OUT -onlcr 2>/dev/null
say "kernel $SMCTRACE_KERNEL, role $ROLE, address $LAB_ADDR"

# Setup always done: the network.
step modprobe virtio_net
step ip link set lo up
step ip link set eth0 up
step ip addr add "$LAB_ADDR/24" dev eth0

if [ "$LAB_SMC_SETUP" = 1 ]; then
	# rxe needs a crc32 shash before it loads ("failed to init crc32 algorithm err:-2") on
	# 6.x; 7.x has crc32 as a library and no crc32_generic module.
	if [ "$LAB_CRC32_MODULE" = 1 ]; then
		step modprobe crc32_generic
	fi
	modprobe crc32-pclmul 2>/dev/null
	if [ -n "$LAB_SMC_MODULES" ]; then
		# An out-of-tree net/smc build (--smc-modules): only ib_core is needed beside it.
		step modprobe ib_core
		# 7.x: SMC-D devices come from the DIBS layer, which smc.ko links against.
		if modinfo dibs >/dev/null 2>&1; then
			step modprobe dibs
		fi
		step insmod "$LAB_SMC_MODULES/smc.ko"
		step insmod "$LAB_SMC_MODULES/smc_diag.ko"
	else
		step modprobe smc
		step modprobe smc_diag
	fi
	step modprobe rdma_rxe
	for m in $LAB_EXTRA_MODULES; do step insmod "$m"; done
	step rdma link add rxe0 type rxe netdev eth0
	if [ -n "$LAB_UEID" ]; then
		step $LAB_SMCCTL ueid add "$LAB_UEID"
	fi
	if [ -n "$LAB_PNETID" ]; then
		step $LAB_SMCCTL pnet add "$LAB_PNETID" --netdev eth0
		step $LAB_SMCCTL pnet add "$LAB_PNETID" --ibdev rxe0 --ibport 1
	fi
fi

CMDS="$LAB/$ROLE.cmd"
# The commands run in the directory `cargo xtask` was started from (read-only here), so
# relative paths such as target/debug/smcctl work as on the host.
cd "$LAB_CWD" 2>/dev/null || cd /
if [ "$ROLE" = b ]; then
	# B (server role) starts first, in its own process group so it can be stopped as a whole.
	say "starting B's commands"
	setsid /bin/sh "$CMDS" > $OUT 2>&1 < /dev/null &
	pid=$!
	# B is ready when its commands created $SMCTRACE_READY_FILE, or something listens on TCP
	# (an AF_SMC listener shows up through its internal TCP socket), or its commands ended,
	# or after LAB_READY_TIMEOUT seconds.
	n=0
	while [ ! -e "$SMCTRACE_READY_FILE" ] && kill -0 $pid 2>/dev/null; do
		if awk 'NR > 1 && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			break
		fi
		n=$((n + 1))
		[ $n -ge $((LAB_READY_TIMEOUT * 10)) ] && { say "no listener after ${LAB_READY_TIMEOUT}s, A starts anyway"; break; }
		sleep 0.1
	done
	: > "$SMCTRACE_READY_FILE"
	say "B ready"
	# B ends when its commands end, or LAB_STOP_GRACE seconds after A finished.
	stopped=
	while kill -0 $pid 2>/dev/null; do
		if [ -e "$LAB/a.done" ]; then
			n=0
			while kill -0 $pid 2>/dev/null && [ $n -lt $((LAB_STOP_GRACE * 10)) ]; do
				sleep 0.1; n=$((n + 1))
			done
			if kill -0 $pid 2>/dev/null; then
				say "A finished ${LAB_STOP_GRACE}s ago, stopping B's commands (SIGTERM)"
				kill -TERM -$pid 2>/dev/null
				sleep 1
				kill -KILL -$pid 2>/dev/null
				stopped=1
			fi
			break
		fi
		sleep 0.2
	done
	wait $pid
	rc=$?
	if [ -n "$stopped" ]; then
		finish 0 "stopped after A finished"
	fi
	finish $rc "exit status of B's commands"
else
	if [ "$LAB_TWO_GUESTS" = 1 ]; then
		say "waiting for B"
		n=0
		while [ ! -e "$LAB/b.ready" ]; do
			if [ -e "$LAB/b.done" ]; then
				finish 126 "B ended before it was ready: $(cat "$LAB/b.done")"
			fi
			n=$((n + 1))
			[ $n -ge $((LAB_PEER_TIMEOUT * 10)) ] && finish 126 "B not ready after ${LAB_PEER_TIMEOUT}s"
			sleep 0.1
		done
	fi
	say "starting A's commands"
	/bin/sh "$CMDS" > $OUT 2>&1 < /dev/null
	finish $? "exit status of A's commands"
fi
