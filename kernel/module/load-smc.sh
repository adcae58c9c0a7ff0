#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# load-smc.sh: in a lab guest (or any machine running the kernel the modules were built
# for), replace the stock SMC modules by the ones kernel/module/build.sh built, and make
# SMC-D over loopback-ism usable: load ib_core, insmod smc.ko and smc_diag.ko, check that
# loopback-ism registered, add the lab's UEID (SMC-Dv2 needs one off s390).
#
# usage: load-smc.sh MODDIR [SMCCTL]
#   MODDIR  the directory build.sh printed (holds smc.ko and smc_diag.ko)
#   SMCCTL  smcctl binary (default: target/debug/smcctl, relative to the current directory)
#
# Exit status 0 only if every step worked; each failure is one line on stderr.

set -eu

die() {
	echo "load-smc.sh: $*" >&2
	exit 1
}

[ $# -ge 1 ] || die "usage: load-smc.sh MODDIR [SMCCTL]"
M=$1
SMCCTL=${2:-target/debug/smcctl}
[ -r "$M/smc.ko" ] && [ -r "$M/smc_diag.ko" ] || die "no smc.ko/smc_diag.ko in $M"
[ -x "$SMCCTL" ] || die "no smcctl at $SMCCTL"

if grep -q "^smc " /proc/modules; then
	grep -q "^smc_diag " /proc/modules && { rmmod smc_diag || die "cannot unload the loaded smc_diag"; }
	rmmod smc || die "cannot unload the loaded smc (sockets still open?)"
fi
LO="smc: adding smcd device loopback-ism"
before=$(dmesg | grep -c "$LO" || true)
modprobe ib_core || die "modprobe ib_core failed"
insmod "$M/smc.ko" || die "insmod $M/smc.ko failed (built for $(uname -r)?)"
insmod "$M/smc_diag.ko" || die "insmod $M/smc_diag.ko failed"
after=$(dmesg | grep -c "$LO" || true)
[ "$after" -gt "$before" ] ||
	die "smc.ko loaded but registered no loopback-ism (built without CONFIG_SMC_LO?)"
"$SMCCTL" ueid add SMCTRACE-LAB || die "smcctl ueid add SMCTRACE-LAB failed"
if [ -e /proc/sys/net/smc/slow_threshold_us ]; then
	echo "load-smc.sh: smc.ko with the smctrace series, SMC-D loopback-ism ready," \
		"net.smc.slow_threshold_us=$(cat /proc/sys/net/smc/slow_threshold_us)"
else
	echo "load-smc.sh: smc.ko without the smctrace series, SMC-D loopback-ism ready"
fi
