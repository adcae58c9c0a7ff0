#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# build.sh: build smc.ko and smc_diag.ko out of tree for the lab's Debian 6.12 kernel,
# with the 6.12 backport of the smctrace net/smc series (kernel/patches-6.12/) applied
# and SMC-D loopback-ism (CONFIG_SMC_LO) on, or without the series (--stock) for
# comparisons. kernel/patches/ holds the series for Linux 7.3 (net/smc without
# CONFIG_SMC_LO, loopback in drivers/dibs), which this script does not use.
#
# Why out of tree: the lab boots Debian's own kernel; only net/smc changes, so the
# modules are built against Debian's linux-headers of exactly that kernel and loaded
# instead of the stock smc.ko. Nothing is installed on the host: the packages are
# fetched with `apt-get download` and unpacked with `dpkg -x` into the cache.
#
# Run as root on Debian 12 (bookworm, with bookworm-security in the apt sources, as a
# stock installation has). See docs/kernel.md.

set -eu

usage() {
	cat <<EOF
usage: kernel/module/build.sh [--stock] [--each] [--check] [--cache DIR] [--version DEBVER]

  --stock          build net/smc without the series (CONFIG_SMC_LO on, as the patched one)
  --each           apply the series patch by patch and build after every one (W=1;
                   any compiler warning fails the build)
  --check          run scripts/checkpatch.pl --strict on every patch of the series
  --cache DIR      cache directory (default \$SMCTRACE_KERNEL_CACHE or /var/cache/smctrace-kernel)
  --version DEBVER Debian version of the kernel packages (default 6.12.117-1~deb12u1,
                   the kernel the lab boots)

Prints the directory holding smc.ko and smc_diag.ko as its last line.
EOF
}

die() {
	echo "build.sh: $*" >&2
	exit 1
}

HERE=$(cd "$(dirname "$0")" && pwd)
# the 6.12 series (kernel/patches/ is the 7.3 one)
PATCHES=$(cd "$HERE/../patches-6.12" && pwd)
CACHE=${SMCTRACE_KERNEL_CACHE:-/var/cache/smctrace-kernel}
DEBVER=6.12.117-1~deb12u1
STOCK=0
EACH=0
CHECK=0

while [ $# -gt 0 ]; do
	case "$1" in
	--stock) STOCK=1 ;;
	--each) EACH=1 ;;
	--check) CHECK=1 ;;
	--cache) shift; [ $# -gt 0 ] || die "--cache needs a directory"; CACHE=$1 ;;
	--version) shift; [ $# -gt 0 ] || die "--version needs a Debian version"; DEBVER=$1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
	shift
done

[ "$(id -u)" = 0 ] || die "must run as root (apt-get download, dpkg -x into $CACHE)"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "needs Debian's apt-get and dpkg"

# 6.12.117-1~deb12u1 -> upstream 6.12.117, ABI name 6.12.117+deb12, series 6.12
UPSTREAM=${DEBVER%%-*}
SERIES=$(echo "$UPSTREAM" | cut -d. -f1-2)
case "$DEBVER" in
*~deb12*) ABI=$UPSTREAM+deb12 ;;
*~deb13* | *) ABI=$UPSTREAM+deb13 ;;
esac
KREL=$ABI-amd64

# tools: the compiler Debian built the kernel with, make, pahole (module BTF), xz (the
# source tarball), git (git apply), perl (checkpatch)
missing=""
for t in gcc-12:gcc-12 make:make pahole:dwarves xz:xz-utils git:git perl:perl; do
	command -v "${t%%:*}" >/dev/null || missing="$missing ${t#*:}"
done
if [ -n "$missing" ]; then
	echo "build.sh: installing$missing" >&2
	apt-get install -y $missing >&2 || die "apt-get install$missing failed"
fi

V=$CACHE/$DEBVER
mkdir -p "$V/debs"
exec 9>"$CACHE/.lock"
flock 9

PKGS="linux-source-$SERIES linux-headers-$KREL linux-headers-$ABI-common linux-kbuild-$ABI"

# 1. the packages, downloaded (never installed) and unpacked once per version
if [ ! -e "$V/root/.unpacked" ]; then
	cd "$V/debs"
	for p in $PKGS; do
		ls "$p"_*.deb >/dev/null 2>&1 && continue
		if ! apt-get download "$p=$DEBVER" >&2; then
			apt-get update >&2 || die "apt-get update failed"
			apt-get download "$p=$DEBVER" >&2 || die "cannot download $p=$DEBVER (is bookworm-security in the apt sources?)"
		fi
	done
	rm -rf "$V/root"
	mkdir -p "$V/root"
	for d in "$V"/debs/*.deb; do
		dpkg -x "$d" "$V/root"
	done
	# the headers' Makefile includes the -common tree by its installed path
	sed -i "s|^include /usr/src/|include $V/root/usr/src/|" "$V/root/usr/src/linux-headers-$KREL/Makefile"
	touch "$V/root/.unpacked"
fi
KDIR=$V/root/usr/src/linux-headers-$KREL
[ -d "$KDIR" ] || die "no $KDIR after unpacking"

# module BTF (/sys/kernel/btf/smc, which smc-record reads) is generated against the
# kernel's vmlinux; the headers package has none, so take the lab's (same package
# version) or extract it from the image package
if [ ! -e "$KDIR/vmlinux" ]; then
	LAB=${SMCTRACE_LAB_CACHE:-/var/cache/smctrace-lab}/linux-image-$KREL-unsigned_$DEBVER/vmlinux
	if [ -e "$LAB" ]; then
		ln -sf "$LAB" "$KDIR/vmlinux"
	else
		cd "$V/debs"
		ls linux-image-"$KREL"-unsigned_*.deb >/dev/null 2>&1 ||
			apt-get download "linux-image-$KREL-unsigned=$DEBVER" >&2 ||
			die "cannot download linux-image-$KREL-unsigned=$DEBVER (for vmlinux)"
		rm -rf "$V/image"
		dpkg -x linux-image-"$KREL"-unsigned_*.deb "$V/image"
		tar -xJf "$V/root/usr/src/linux-source-$SERIES.tar.xz" -C "$V" \
			"linux-source-$SERIES/scripts/extract-vmlinux"
		"$V/linux-source-$SERIES/scripts/extract-vmlinux" "$V/image/boot/vmlinuz-$KREL" >"$KDIR/vmlinux" ||
			die "cannot extract vmlinux from vmlinuz-$KREL"
		rm -rf "$V/image"
	fi
fi

# 2. the part of the source the series touches, once per version
SRC=$V/src/linux-source-$SERIES
if [ ! -e "$SRC/.extracted" ]; then
	rm -rf "$V/src"
	mkdir -p "$V/src"
	tar -xJf "$V/root/usr/src/linux-source-$SERIES.tar.xz" -C "$V/src" \
		"linux-source-$SERIES/net/smc" \
		"linux-source-$SERIES/include/uapi/linux/smc.h" \
		"linux-source-$SERIES/include/uapi/linux/smc_diag.h" \
		"linux-source-$SERIES/Documentation/networking" \
		"linux-source-$SERIES/MAINTAINERS" \
		"linux-source-$SERIES/scripts/checkpatch.pl" \
		"linux-source-$SERIES/scripts/spelling.txt" \
		"linux-source-$SERIES/scripts/const_structs.checkpatch"
	touch "$SRC/.extracted"
fi

SERIES_PATCHES=$(ls "$PATCHES"/0[0-9][0-9][0-9]-*.patch | grep -v 0000-cover-letter)
[ -n "$SERIES_PATCHES" ] || die "no patches in $PATCHES"

if [ "$CHECK" = 1 ]; then
	for p in $SERIES_PATCHES; do
		echo "checkpatch --strict $(basename "$p")" >&2
		# FILE_PATH_CHANGES ("does MAINTAINERS need updating?") fires for every new
		# file; net/smc/smc_lat.[ch] are covered by the SMC entry's "F: net/smc/"
		# run outside any git work tree: inside one (e.g. the smctrace checkout, with the
		# patch file modified) checkpatch reads the file as a change to that tree
		(cd "$SRC" && perl scripts/checkpatch.pl --strict --no-tree -q --ignore FILE_PATH_CHANGES "$p") >&2 ||
			die "checkpatch: $(basename "$p")"
	done
fi

# builds net/smc of tree $1 in build directory $2 (W=1, warnings are errors)
build() {
	tree=$1
	out=$2
	rm -rf "$out"
	mkdir -p "$out/include/uapi/linux"
	cp "$tree"/net/smc/* "$out/"
	cp "$tree/include/uapi/linux/smc.h" "$tree/include/uapi/linux/smc_diag.h" "$out/include/uapi/linux/"
	cp "$HERE/Kbuild" "$out/Kbuild"
	log=$out/build.log
	# both the make variable (builds smc_loopback.o) and the define (what the headers
	# and net/smc test with IS_ENABLED) are needed: the headers' autoconf has SMC_LO off
	if ! make -j"$(nproc)" -C "$KDIR" M="$out" W=1 \
		CONFIG_SMC=m CONFIG_SMC_DIAG=m CONFIG_SMC_LO=y KCFLAGS=-DCONFIG_SMC_LO=1 \
		modules >"$log" 2>&1; then
		tail -30 "$log" >&2
		die "build failed in $out (log: $log)"
	fi
	if grep -E "warning:|Skipping BTF" "$log" >&2; then
		die "warnings in $out (log: $log)"
	fi
}

WORK=$V/work
rm -rf "$WORK"
mkdir -p "$WORK"
cp -a "$SRC" "$WORK/tree"
T=$WORK/tree
start=$(date +%s)
if [ "$STOCK" = 1 ]; then
	NAME=stock
else
	NAME=patched
	n=0
	for p in $SERIES_PATCHES; do
		n=$((n + 1))
		(cd "$T" && git apply --whitespace=error-all "$p") || die "$(basename "$p") does not apply"
		if [ "$EACH" = 1 ]; then
			echo "build.sh: building after $(basename "$p")" >&2
			build "$T" "$WORK/build-$n"
		fi
	done
fi
build "$T" "$V/build-$NAME"
end=$(date +%s)

OUT=$V/modules/$NAME
mkdir -p "$OUT"
cp "$V/build-$NAME/smc.ko" "$V/build-$NAME/smc_diag.ko" "$OUT/"
echo "build.sh: $NAME smc.ko, smc_diag.ko for $KREL built in $((end - start)) s" >&2
echo "$OUT"
