#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# kernel-tests.sh: run the kernel series' own tests inside a lab guest.
#
# Why: patches 6 and 7 of kernel/patches/ add the tests upstream expects with the series,
# a KUnit suite (smc_lat, module smc_lat_test.ko, CONFIG_SMC_LAT_KUNIT_TEST=m, needs
# CONFIG_KUNIT) for the pure logic of the latency metrics, and a kselftest
# (tools/testing/selftests/net/smc/smc_latency) that drives a slow reader over SMC-D
# loopback (CONFIG_DIBS_LO) and checks SMC_DIAG_LATENCY, the GET_STATS histogram and the
# tracepoints. Neither is run by `lab run all`; this script runs both in a guest of the lab's
# 7.x kernel and keeps their KTAP output, so that the series is tested the way a net/smc
# maintainer would, on the kernel the lab actually boots.
#
# Runs as root in the guest (the host's Debian 12 userland), after the lab has loaded the
# patched smc.ko and smc_diag.ko. Environment:
#
#   KUNIT_KO      path of smc_lat_test.ko (built with the guest kernel)
#   SELFTEST_DIR  directory holding the built selftest binary smc_latency
#   OUT           directory for the results: kunit.ktap, selftest.ktap
#
# Prints one summary line per part ("kunit: N passed, M failed, K skipped") and exits 0
# only if every KUnit case passed and the selftest passed without any skip: the lab kernel
# is supposed to have everything the selftest needs (SMC-D loopback, tracefs), so a skip
# there means a broken setup, not an optional feature.

set -u

SUITE=smc_lat
SELFTEST=smc_latency
SELFTEST_TIMEOUT=${SELFTEST_TIMEOUT:-300}

die() {
	echo "kernel-tests: $*" >&2
	exit 2
}

[ "$(id -u)" = 0 ] || die "must run as root"
[ -n "${KUNIT_KO:-}" ] || die "KUNIT_KO (path of smc_lat_test.ko) is not set"
[ -n "${SELFTEST_DIR:-}" ] || die "SELFTEST_DIR (directory of the built selftest) is not set"
[ -n "${OUT:-}" ] || die "OUT (results directory) is not set"
[ -f "$KUNIT_KO" ] || die "no such file: $KUNIT_KO"
mkdir -p "$OUT" || die "cannot create $OUT"

failed=0

# --- KUnit ------------------------------------------------------------------------------
# /sys/module/kunit exists when KUnit is built in (it has parameters) or already loaded.
kunit_ktap=$OUT/kunit.ktap
: >"$kunit_ktap"
if [ ! -d /sys/module/kunit ] && ! modprobe kunit; then
	echo "kernel-tests: modprobe kunit failed (CONFIG_KUNIT=m in the guest kernel?)" >&2
	failed=1
fi
if [ ! -d /sys/kernel/debug/kunit ] && ! mountpoint -q /sys/kernel/debug; then
	mount -t debugfs debugfs /sys/kernel/debug ||
		echo "kernel-tests: cannot mount debugfs, falling back to the kernel log" >&2
fi
# A module left loaded from an earlier run would not run its tests again.
if [ -d /sys/module/smc_lat_test ]; then
	rmmod smc_lat_test || echo "kernel-tests: rmmod smc_lat_test failed" >&2
fi

kmsg_before=$(dmesg 2>/dev/null | wc -l)
if [ "$failed" = 0 ]; then
	# the suite runs inside the module's init, so it has finished when insmod returns
	if ! insmod "$KUNIT_KO"; then
		echo "kernel-tests: insmod $KUNIT_KO failed" >&2
		failed=1
	fi
fi

results=/sys/kernel/debug/kunit/$SUITE/results
if [ -r "$results" ]; then
	cat "$results" >"$kunit_ktap"
else
	# No debugfs (or CONFIG_KUNIT_DEBUGFS off): the KTAP block of this insmod in the log,
	# from the "KTAP version" line that opens it to the suite's own result line.
	dmesg --notime 2>/dev/null | tail -n +"$((kmsg_before + 1))" |
		sed -n '/^ *KTAP version/,/^ *\(not \)\{0,1\}ok [0-9][0-9]* '"$SUITE"'$/p' >"$kunit_ktap"
fi
[ -d /sys/module/smc_lat_test ] && rmmod smc_lat_test 2>/dev/null

# Test cases are the results named smc_lat_test_*; the suite's own line is "ok 1 smc_lat".
k_pass=$(grep -c '^ *ok [0-9][0-9]* smc_lat_test_[a-z0-9_]*$' "$kunit_ktap")
k_fail=$(grep -c '^ *not ok [0-9][0-9]* smc_lat_test_' "$kunit_ktap")
k_skip=$(grep -c '^ *ok [0-9][0-9]* smc_lat_test_.*# *SKIP' "$kunit_ktap")
k_suite=$(grep -c '^ *ok [0-9][0-9]* '"$SUITE"'$' "$kunit_ktap")
echo "kunit: $k_pass passed, $k_fail failed, $k_skip skipped (suite $SUITE, $kunit_ktap)"
if [ "$k_fail" != 0 ] || [ "$k_skip" != 0 ] || [ "$k_pass" = 0 ] || [ "$k_suite" = 0 ]; then
	[ "$k_pass" = 0 ] && echo "kernel-tests: no KUnit result of suite $SUITE" >&2
	failed=1
fi

# --- kselftest ------------------------------------------------------------------------------
st_ktap=$OUT/selftest.ktap
prog=$SELFTEST_DIR/$SELFTEST
if [ -x "$prog" ]; then
	timeout "$SELFTEST_TIMEOUT" "$prog" >"$st_ktap" 2>&1
	st_rc=$?
else
	echo "kernel-tests: no executable $prog" >&2
	: >"$st_ktap"
	st_rc=127
fi
# "ok N name # SKIP why" is a skipped case, "1..0 # SKIP why" a skip of the whole test
s_skip=$(grep -c -e '^ok [0-9][0-9]* .*# *SKIP' -e '^1\.\.0 *# *SKIP' "$st_ktap")
s_pass=$(grep '^ok [0-9][0-9]* ' "$st_ktap" | grep -vc '# *SKIP')
s_fail=$(grep -c '^not ok [0-9][0-9]* ' "$st_ktap")
echo "selftest: $s_pass passed, $s_fail failed, $s_skip skipped (exit $st_rc, $st_ktap)"
if [ "$st_rc" != 0 ] || [ "$s_fail" != 0 ] || [ "$s_skip" != 0 ] || [ "$s_pass" = 0 ]; then
	grep -E '^(not ok|Bail out|1\.\.0|ok .*# *SKIP)' "$st_ktap" | sed 's/^/kernel-tests: /' >&2
	failed=1
fi

exit "$failed"
