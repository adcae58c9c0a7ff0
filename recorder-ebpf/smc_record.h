/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Constants shared by smc_record.bpf.c and the smc-record loader: probe ids
 * (index of the per-probe hit counter; the loader's table in
 * recorder/src/probes.rs lists them in this order and a test checks it) and
 * the filter flags. The event records themselves are in smctrace_event.h.
 */
#ifndef SMC_RECORD_H
#define SMC_RECORD_H

enum probe_id {
	P_CONNECT = 0,
	P_HS_CLIENT,
	P_HS_SERVER,
	P_CLC_PROPOSAL,
	P_CLC_ACCEPT,
	P_CLC_CONFIRM,
	P_CLC_DECLINE,
	P_CLC_WAIT,
	P_FALLBACK,
	P_RELEASE,
	P_LINK_DOWN,
	P_SENDMSG,
	P_TX_COPY,
	P_TX_START_SENDMSG,
	P_TX_START_PENDING,
	P_TX_START_WORK,
	P_RDMA_WRITE,
	P_CDC_SEND,
	P_SMCD_CDC_SEND,
	P_CDC_TX_DONE,
	P_CDC_RECV,
	P_SMCD_CDC_RECV,
	P_RX_ACTION,
	P_RX_WAKE,
	P_RECVMSG,
	P_CLC_BUILD,
	P_NR
};

/* filter_flags: which filter classes are active (maps in the BPF program).
 * Mirrored by recorder/src/loader.rs; a test compares the two. */
#define FLT_PID		0x1
#define FLT_COMM	0x2
#define FLT_PORT	0x4
#define FLT_NETNS	0x8
#define FLT_CONN	0x10	/* --conn: exact (local port, remote port) pairs */

/* Per-connection state in the conns map. */
#define CONN_OK		0x1	/* port/netns filters passed */
#define TASK_OK		0x2	/* a task matching pid/comm used the socket */

#endif /* SMC_RECORD_H */
