// SPDX-License-Identifier: GPL-2.0
/*
 * monitor.h: the per-connection value of the BPF monitor's "mon_conns" map
 * (monitor.bpf.c), shared with its reader (recorder/src/conns.rs, a
 * #[repr(C)] mirror that a test checks member by member against this file). Stages and histogram buckets
 * are those of the kernel series' SMC_DIAG_LATENCY and netlink histograms
 * (docs/kernel.md), so the two sources print the same table.
 */
#ifndef SMCTRACE_MONITOR_H
#define SMCTRACE_MONITOR_H

#include <linux/types.h>

#define MON_STAGES 4		/* SMC_LAT_*: cdc_tx_compl rx_consume tx_sndbuf_full tx_peer_win */
#define MON_ANOMALIES 8		/* last anomalies kept, as the kernel's ring */
#define MON_HIST 24		/* log2 buckets: 0 is < 1 us, b is [2^(b-1), 2^b) us, 23 is >= 4.19 s */

enum mon_stage_id {
	MON_CDC_TX_COMPL = 0,
	MON_RX_CONSUME = 1,
	MON_TX_SNDBUF_FULL = 2,
	MON_TX_PEER_WIN = 3,
};

struct mon_stage {
	__u64 count;
	__u64 sum_ns;
	__u64 max_ns;
	__u64 hist[MON_HIST];
};

struct mon_anomaly {
	__u64 tstamp_ns;	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) when the stage ended */
	__u64 lat_ns;
	__u32 stage;
	__u32 _pad;
};

struct mon_conn {
	struct mon_stage stage[MON_STAGES];
	struct mon_anomaly anomalies[MON_ANOMALIES];	/* slot anomaly_total % 8 is the next */
	__u64 anomaly_total;
	__u64 first_ns;		/* first seen by the monitor */
	__u64 closed_ns;	/* smc_release, 0 while open */
	/* running stage state (not statistics) */
	__u64 rx_since_ns;	/* unconsumed data waiting since */
	__u64 rx_last_ns;	/* newest arrival */
	__u64 sndbuf_since_ns;	/* send buffer found full at */
	__u64 peerwin_since_ns;	/* peer window found closed at */
	/* identity, from the internal TCP socket */
	__u8 saddr[16];		/* IPv4 in the first 4 bytes when family is AF_INET */
	__u8 daddr[16];
	__u32 token;		/* alert_token_local, as smc_diag's token */
	__u16 family;
	__u16 sport;		/* host order */
	__u16 dport;		/* host order */
	__u8 smcd;
	__u8 _pad[5];		/* to 8-byte alignment: 1160 bytes in all */
};

#endif
