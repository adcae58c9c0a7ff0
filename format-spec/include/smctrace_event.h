/* SPDX-License-Identifier: GPL-2.0 */
/*
 * smctrace event records: the one declaration of the bytes the recorder's BPF
 * programs put into the ring buffer and that a .smctrace chunk stores verbatim.
 *
 * Included by the BPF programs in recorder-ebpf/ (with vmlinux-free <linux/types.h> types)
 * and mirrored field for field by format-spec/src/event.rs; a test compiles
 * this header and checks every size and offset against the Rust mirror.
 *
 * Rules (see format-spec/SPEC.md, "Event records"):
 *  - Little-endian, natural alignment, every record a multiple of 8 bytes.
 *  - Every record starts with struct st_hdr; hdr.len is the whole record.
 *  - A reader skips a kind it does not know by hdr.len and counts it.
 *  - A body may grow at its end in a later minor version; readers accept a
 *    hdr.len larger than the body they know and ignore the tail.
 *  - "sock" is a per-recording keyed transform of the kernel's struct smc_sock
 *    address: stable within one recording, never the address itself.
 */
#ifndef SMCTRACE_EVENT_H
#define SMCTRACE_EVENT_H

#ifndef __SMCTRACE_NO_LINUX_TYPES
#include <linux/types.h>
#endif

/* Bumped when a record changes incompatibly (that is a format major bump). */
#define ST_EVENT_ABI 1

#define ST_COMM_LEN 16
#define ST_IBNAME_LEN 16
#define ST_PAYLOAD_MAX 256

/* Event kinds (st_hdr.kind). Values are never reused. */
enum st_kind {
	/* connection lifecycle */
	ST_EV_CONNECT = 1,	/* client connect() begins: struct st_connect */
	ST_EV_CONN_INFO = 2,	/* handshake finished (either side): struct st_conn_info */
	ST_EV_CLC = 3,		/* CLC message sent or received: struct st_clc */
	ST_EV_FALLBACK = 4,	/* smc_switch_to_fallback: struct st_fallback */
	ST_EV_CLOSE = 5,	/* socket released: struct st_close */
	ST_EV_LINK_DOWN = 6,	/* smcr link down: struct st_link_down */
	/* sender data path */
	ST_EV_SENDMSG = 16,	/* user sendmsg on an SMC socket: struct st_sendmsg */
	ST_EV_TX_COPY = 17,	/* copy into the send buffer: struct st_tx_copy */
	ST_EV_TX_START = 18,	/* transmit attempt begins: struct st_tx_start */
	ST_EV_RDMA_WRITE = 19,	/* RDMA WRITE posted / ISM move: struct st_rdma_write */
	ST_EV_CDC_SEND = 20,	/* CDC handed to the device: struct st_cdc */
	ST_EV_CDC_TX_DONE = 21,	/* CDC send completion (SMC-R CQE): struct st_cdc_tx_done */
	/* receiver data path */
	ST_EV_CDC_RECV = 32,	/* CDC arrived (CQ tasklet / ISM tasklet): struct st_cdc */
	ST_EV_RX_ACTION = 33,	/* CDC processed, cursors updated: struct st_rx_action */
	ST_EV_RX_WAKE = 34,	/* reader woken: struct st_rx_wake */
	ST_EV_RECVMSG = 35,	/* user recvmsg on an SMC socket: struct st_recvmsg */
	/* optional payload bytes (--payload N) */
	ST_EV_PAYLOAD = 48,	/* struct st_payload + bytes */
};

/* st_hdr.flags */
#define ST_F_TRUNCATED	0x0001	/* a variable-length tail was cut to fit */

/* Common header of every record: 24 bytes. */
struct st_hdr {
	__u16 kind;	/* enum st_kind */
	__u16 len;	/* whole record in bytes, header included, multiple of 8 */
	__u16 cpu;	/* bpf_get_smp_processor_id() */
	__u16 flags;	/* ST_F_* */
	__u64 ts_ns;	/* bpf_ktime_get_ns(): CLOCK_MONOTONIC of the recording host */
	__u32 pid;	/* tgid of the current task (the interrupted one in softirq) */
	__u32 tid;	/* pid of the current task */
};

/* An SMC cursor, as union smc_host_cursor: wrap counts ring turns. */
struct st_curs {
	__u32 count;	/* byte offset inside the ring */
	__u16 wrap;	/* ring turns, u16, wraps */
	__u16 _pad;
};

/* Address of a TCP endpoint (the clcsock). IPv4 uses the first 4 bytes of addr. */
struct st_endpoint {
	__u8 addr[16];	/* network byte order */
	__u16 port;	/* host byte order */
	__u16 _pad[3];
};

/* ST_EV_CONNECT: kprobe smc_connect, the user's connect() on an AF_SMC socket. */
struct st_connect {
	struct st_hdr hdr;
	__u64 sock;
	__u64 netns;		/* net namespace inode number */
	struct st_endpoint dst;	/* from the sockaddr argument */
	__u16 family;		/* AF_INET / AF_INET6 of the sockaddr */
	__u16 _pad[3];
	char comm[ST_COMM_LEN];
};

/* st_conn_info.role */
#define ST_ROLE_CLIENT 1
#define ST_ROLE_SERVER 2
/* st_conn_info.mode */
#define ST_MODE_UNKNOWN 0
#define ST_MODE_SMCR 1
#define ST_MODE_SMCD 2
#define ST_MODE_FALLBACK 3

/*
 * ST_EV_CONN_INFO: the handshake finished (client: return of __smc_connect;
 * server: return of smc_listen_work). Carries everything needed to name the
 * connection and pair it with the peer's recording.
 */
struct st_conn_info {
	struct st_hdr hdr;
	__u64 sock;
	__u64 netns;
	struct st_endpoint local;	/* clcsock local address/port */
	struct st_endpoint remote;	/* clcsock peer address/port */
	__u16 family;		/* AF_INET / AF_INET6 of the clcsock */
	__u8 role;		/* ST_ROLE_* */
	__u8 mode;		/* ST_MODE_* */
	__s32 rc;		/* return value of the handshake function */
	__u32 fallback_rsn;	/* smc->fallback_rsn (SMC_CLC_DECL_*), 0 if none */
	__u32 peer_diagnosis;	/* smc->peer_diagnosis */
	__u32 local_token;	/* conn.alert_token_local */
	__u32 peer_token;	/* conn.local_tx_ctrl.token (the peer's alert token) */
	__u64 peer_dmb_token;	/* SMC-D: conn.peer_token */
	__u64 local_dmb_token;	/* SMC-D: conn.rmb_desc->token */
	__u32 sndbuf_len;	/* conn.sndbuf_desc->len */
	__u32 rmb_len;		/* conn.rmb_desc->len */
	__u32 peer_rmbe_size;	/* conn.peer_rmbe_size */
	__u32 qpn;		/* SMC-R: lnk->roce_qp->qp_num */
	__u32 peer_qpn;		/* SMC-R: lnk->peer_qpn */
	__u8 link_id;		/* SMC-R: lnk->link_id */
	__u8 smc_version;	/* lgr->smc_version */
	__u16 _pad;
	__u64 lgr;		/* keyed transform of the link group address */
	char ibname[ST_IBNAME_LEN];	/* SMC-R: lnk->ibname */
	char comm[ST_COMM_LEN];
};

/* st_clc.dir */
#define ST_DIR_TX 1
#define ST_DIR_RX 2

/* ST_EV_CLC: a CLC message (proposal 1, accept 2, confirm 3, decline 4). */
struct st_clc {
	struct st_hdr hdr;
	__u64 sock;
	__u8 dir;		/* ST_DIR_* */
	__u8 type;		/* CLC type byte */
	__u16 length;		/* CLC length field */
	__u8 version;		/* high nibble of the version byte */
	__u8 path;		/* 'R', 'D' or 'B' (SMC-Rv2 eyecatcher family), 0 unknown */
	__u16 _pad;
	__s32 rc;		/* return value of the send/wait function */
	__u32 decline_diag;	/* DECLINE: peer_diagnosis field, host order */
};

/* ST_EV_FALLBACK: smc_switch_to_fallback(smc, reason). */
struct st_fallback {
	struct st_hdr hdr;
	__u64 sock;
	__u32 reason;		/* SMC_CLC_DECL_* */
	__u32 peer_diagnosis;
};

/* ST_EV_CLOSE: smc_release on the socket. */
struct st_close {
	struct st_hdr hdr;
	__u64 sock;
	__u8 state;		/* sk_state at release */
	__u8 killed;		/* conn.killed */
	__u16 _pad[3];
};

/* ST_EV_LINK_DOWN: smcr_link_down_cond[_sched]. */
struct st_link_down {
	struct st_hdr hdr;
	__u64 lgr;
	__u8 link_id;
	__u8 state;
	__u16 _pad[3];
	char ibname[ST_IBNAME_LEN];
};

/* ST_EV_SENDMSG: smc_sendmsg entry..return, emitted at return (stage A). */
struct st_sendmsg {
	struct st_hdr hdr;	/* ts_ns = return */
	__u64 sock;
	__u64 enter_ns;
	__u64 len;		/* bytes asked */
	__s64 ret;		/* bytes accepted or -errno */
};

/* ST_EV_TX_COPY: smc_tx_sendmsg entry..return: the copy into the send buffer (stage B). */
struct st_tx_copy {
	struct st_hdr hdr;	/* ts_ns = return */
	__u64 sock;
	__u64 enter_ns;
	struct st_curs prep_before;	/* conn.tx_curs_prep at entry */
	struct st_curs prep_after;	/* conn.tx_curs_prep at return */
	__u32 sndbuf_len;
	__s32 sndbuf_space;	/* conn.sndbuf_space at return */
	__s64 ret;
};

/* st_tx_start.path */
#define ST_TX_PATH_SENDMSG 1	/* smc_tx_sndbuf_nonempty */
#define ST_TX_PATH_PENDING 2	/* smc_tx_pending (CQE / release_cb / rx) */
#define ST_TX_PATH_WORK 3	/* smc_tx_work (deferred, no WR slot) */

/* ST_EV_TX_START: a transmit attempt on the connection begins (stage C). */
struct st_tx_start {
	struct st_hdr hdr;
	__u64 sock;
	__u8 path;		/* ST_TX_PATH_* */
	__u8 _pad[7];
};

/* ST_EV_RDMA_WRITE: smc_tx_rdma_writes (SMC-R) or smcd_tx_ism_write (SMC-D), stage D. */
struct st_rdma_write {
	struct st_hdr hdr;	/* ts_ns = return */
	__u64 sock;
	__u64 enter_ns;
	struct st_curs prod_before;	/* conn.local_tx_ctrl.prod at entry */
	struct st_curs prod_after;	/* conn.local_tx_ctrl.prod at return */
	struct st_curs sent_after;	/* conn.tx_curs_sent at return */
	__u32 peer_rmbe_size;
	__s32 rc;
	__u32 ism_len;		/* SMC-D: len argument of smcd_tx_ism_write, else 0 */
	__u32 ism_offset;	/* SMC-D: offset argument, else 0 */
};

/*
 * ST_EV_CDC_SEND / ST_EV_CDC_RECV: one CDC message as on the wire, decoded to
 * host order. SMC-D CDCs carry no seqno/token: 0 here, ST_CDC_F_SMCD set.
 */
#define ST_CDC_F_SMCD 0x01
struct st_cdc {
	struct st_hdr hdr;
	__u64 sock;		/* 0 on CDC_RECV for SMC-R (only the token is known there) */
	__u16 seqno;
	__u8 prod_flags;	/* wire byte 24 */
	__u8 conn_state_flags;	/* wire byte 25 */
	__u32 token;		/* the receiver's alert token */
	struct st_curs prod;
	struct st_curs cons;
	__s32 rc;		/* CDC_SEND: return of smc_cdc_msg_send; CDC_RECV: wc status */
	__u8 cdc_flags;		/* ST_CDC_F_* */
	__u8 _pad[3];
};

/* ST_EV_CDC_TX_DONE: smc_cdc_tx_handler, the send CQE of a CDC (stage F). */
struct st_cdc_tx_done {
	struct st_hdr hdr;
	__u64 sock;
	__u16 seqno;		/* pend->ctrl_seq + 1: the seqno on the wire */
	__u16 _pad;
	__u32 wc_status;
	struct st_curs prod;	/* pend->p_cursor */
};

/* ST_EV_RX_ACTION: smc_cdc_msg_recv_action entry..return (stage H). */
struct st_rx_action {
	struct st_hdr hdr;	/* ts_ns = return */
	__u64 sock;
	__u64 enter_ns;
	struct st_curs prod_before;	/* conn.local_rx_ctrl.prod at entry */
	struct st_curs prod_after;	/* conn.local_rx_ctrl.prod at return */
	struct st_curs peer_cons;	/* conn.local_rx_ctrl.cons at return */
	__u16 seqno;		/* conn.local_rx_ctrl.seqno at return */
	__u8 prod_flags;
	__u8 conn_state_flags;
	__s32 bytes_to_rcv;	/* conn.bytes_to_rcv at return */
	__u32 rmb_len;
	__u32 _pad;
};

/* ST_EV_RX_WAKE: smc_rx_wake_up (sk_data_ready of an SMC socket). */
struct st_rx_wake {
	struct st_hdr hdr;
	__u64 sock;
};

/* ST_EV_RECVMSG: smc_rx_recvmsg entry..return (stage I). */
struct st_recvmsg {
	struct st_hdr hdr;	/* ts_ns = return */
	__u64 sock;
	__u64 enter_ns;
	struct st_curs cons_before;	/* conn.local_tx_ctrl.cons at entry */
	struct st_curs cons_after;	/* conn.local_tx_ctrl.cons at return */
	__u64 len;		/* bytes asked */
	__s64 ret;		/* bytes copied or -errno */
	__u32 flags;		/* MSG_* */
	__u32 rmb_len;
};

/* ST_EV_PAYLOAD: first bytes of a user send (--payload N), tail padded to 8. */
struct st_payload {
	struct st_hdr hdr;
	__u64 sock;
	struct st_curs prep_before;	/* stream position of byte 0 (sender's sndbuf ring) */
	__u32 captured;		/* bytes that follow */
	__u32 msg_len;		/* bytes of the send */
	/* __u8 data[captured], padded to a multiple of 8 */
};

#endif /* SMCTRACE_EVENT_H */
