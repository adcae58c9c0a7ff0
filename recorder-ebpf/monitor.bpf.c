// SPDX-License-Identifier: GPL-2.0
/*
 * monitor.bpf.c: smc-record's BPF monitor mode (`smc-record conns --source
 * bpf`), the stock-kernel stand-in for the smctrace series' per-connection
 * latency metrics (SMC_DIAG_LATENCY). For every SMC connection it keeps, in
 * the "mon_conns" hash map keyed by the smc_sock address, count / sum / max,
 * log2 histograms and the last 8 anomalies of the same four stages:
 *
 *   cdc_tx_compl    smc_cdc_msg_send            -> smc_cdc_tx_handler          (SMC-R)
 *                   of the same (connection, CDC sequence number): the handler gets
 *                   a copy of the pend (smc_wr_tx_process_cqe), not its address
 *   rx_consume      new data seen by smc_cdc_msg_recv_action
 *                                               -> smc_rx_recvmsg returns > 0
 *                   (after a partial read the rest is aged from the newest arrival)
 *   tx_sndbuf_full  smc_tx_sndbuf_nonempty finds sndbuf_space 0
 *                                               -> any later hook finds it > 0
 *   tx_peer_win     smc_tx_sndbuf_nonempty finds peer_rmbe_space 0
 *                                               -> a later call finds it > 0
 *
 * Nothing is streamed: no ring buffer, no per-event output. userspace reads
 * the map every --interval. Kernel fields are read at offsets the loader
 * resolves from BTF (as smc_record.bpf.c, see there why not CO-RE).
 *
 * Where kprobes cannot see what the patched kernel sees: tx_sndbuf_full here
 * is "the send buffer was full" (smc_tx_wait, where the kernel's clock
 * runs, is inlined), ended at the next hook that finds space; rx_consume
 * ends at recvmsg's return, after the copy to user space, not when the
 * consumer cursor moves (measured: ~50 us later under TCG).
 */
#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "monitor.h"
#include "kread.h"
#include "offsets.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET6_ 10

/* ---- configuration written by the loader ---- */
volatile const __u64 threshold_ns = 10000000;	/* anomalies at or above; 0: none */

/* member offsets only the monitor reads (the shared ones: offsets.h) */
volatile const __u32 off_conn_peer_rmbe_space = 0;
volatile const __u32 off_conn_tx_cdc_seq = 0;

/* ---- maps ---- */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);			/* struct smc_sock * */
	__type(value, struct mon_conn);
} mon_conns SEC(".maps");

/* A zeroed value to create entries from (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mon_conn);
} mon_zero SEC(".maps");

/* Posted CDCs (SMC-R): {connection, ctrl_seq} -> posted at. */
struct pend_key {
	__u64 conn;
	__u64 seq;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pend_key);
	__type(value, __u64);
} mon_pend SEC(".maps");

/* Entry arguments for the return probes, per task (per CPU in softirq). */
struct entry_val {
	__u64 smc;
	__u64 v0;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct entry_val);
} mon_entry SEC(".maps");

/* ---- helpers ---- */


static __always_inline const void *conn_of(const void *smc)
{
	return AT(smc, off_smc_conn);
}

static __always_inline const void *smc_of_conn(const void *conn)
{
	return (const void *)((const char *)conn - off_smc_conn);
}

static __always_inline __u64 entry_key(__u32 hook)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 k = ((__u64)tid << 32) | hook;

	if (!tid)
		k |= (__u64)(bpf_get_smp_processor_id() + 1) << 16;
	return k;
}

static __always_inline void fill_identity(struct mon_conn *c, const void *smc)
{
	const void *conn = conn_of(smc);
	const void *clc = rd_ptr(smc, off_smc_clcsock);
	const void *sk = clc ? rd_ptr(clc, off_socket_sk) : 0;
	const void *lgr = rd_ptr(conn, off_conn_lgr);

	c->token = rd_u32(conn, off_conn_alert_token_local);
	if (lgr)
		c->smcd = rd_u8(lgr, off_lgr_is_smcd) ? 1 : 0;
	if (!sk)
		return;
	c->family = rd_u16(sk, off_skc_family);
	c->sport = rd_u16(sk, off_skc_num);
	c->dport = __builtin_bswap16(rd_u16(sk, off_skc_dport));
	if (c->family == AF_INET6_) {
		bpf_probe_read_kernel(c->saddr, 16, AT(sk, off_skc_v6_rcv_saddr));
		bpf_probe_read_kernel(c->daddr, 16, AT(sk, off_skc_v6_daddr));
	} else {
		bpf_probe_read_kernel(c->saddr, 4, AT(sk, off_skc_rcv_saddr));
		bpf_probe_read_kernel(c->daddr, 4, AT(sk, off_skc_daddr));
	}
}

/* The connection's entry, created on first sight. */
static __always_inline struct mon_conn *get_conn(const void *smc)
{
	__u64 key = (__u64)smc;
	__u32 zero = 0;
	struct mon_conn *c, *z;

	if (!smc)
		return 0;
	c = bpf_map_lookup_elem(&mon_conns, &key);
	if (!c) {
		z = bpf_map_lookup_elem(&mon_zero, &zero);
		if (!z)
			return 0;
		bpf_map_update_elem(&mon_conns, &key, z, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&mon_conns, &key);
		if (!c)
			return 0;
		c->first_ns = bpf_ktime_get_ns();
	}
	/* the token and the link group come with the handshake: refresh until then */
	if (!c->token || !c->sport)
		fill_identity(c, smc);
	return c;
}

/* log2 bucket of a latency, as the kernel's netlink histogram. */
static __always_inline __u32 bucket(__u64 lat_ns)
{
	__u64 us = lat_ns / 1000;
	__u32 b = 0;

#pragma unroll
	for (int i = 0; i < MON_HIST - 1; i++) {
		if (us) {
			b++;
			us >>= 1;
		}
	}
	return b;
}

static __always_inline void sample(struct mon_conn *c, __u32 stage, __u64 since, __u64 now)
{
	struct mon_stage *st;
	__u64 lat, slot;
	__u32 b;

	if (!since || now < since || stage >= MON_STAGES)
		return;
	lat = now - since;
	st = &c->stage[stage];
	__sync_fetch_and_add(&st->count, 1);
	__sync_fetch_and_add(&st->sum_ns, lat);
	if (lat > st->max_ns)
		st->max_ns = lat;
	b = bucket(lat);
	if (b < MON_HIST)
		__sync_fetch_and_add(&st->hist[b], 1);
	if (!threshold_ns || lat < threshold_ns)
		return;
	slot = __sync_fetch_and_add(&c->anomaly_total, 1) & (MON_ANOMALIES - 1);
	c->anomalies[slot].tstamp_ns = now;
	c->anomalies[slot].lat_ns = lat;
	c->anomalies[slot].stage = stage;
}

/* The send buffer had room again: ends a tx_sndbuf_full interval. */
static __always_inline void sndbuf_check(struct mon_conn *c, const void *conn, __u64 now)
{
	if (c->sndbuf_since_ns && rd_u32(conn, off_conn_sndbuf_space)) {
		sample(c, MON_TX_SNDBUF_FULL, c->sndbuf_since_ns, now);
		c->sndbuf_since_ns = 0;
	}
}

/* ---- receiver: rx_consume ---- */

enum { H_RX_ACTION = 1, H_RECVMSG = 2 };

SEC("kprobe/smc_cdc_msg_recv_action")
int BPF_KPROBE(mon_rx_action_enter, void *smc)
{
	struct entry_val e = { .smc = (__u64)smc };
	__u64 k = entry_key(H_RX_ACTION);

	e.v0 = rd_u64(conn_of(smc), off_conn_rx_prod);
	bpf_map_update_elem(&mon_entry, &k, &e, BPF_ANY);
	return 0;
}

SEC("kretprobe/smc_cdc_msg_recv_action")
int BPF_KRETPROBE(mon_rx_action_exit)
{
	__u64 k = entry_key(H_RX_ACTION), now = bpf_ktime_get_ns();
	struct entry_val *e = bpf_map_lookup_elem(&mon_entry, &k);
	const void *smc, *conn;
	struct mon_conn *c;

	if (!e)
		return 0;
	smc = (const void *)e->smc;
	conn = conn_of(smc);
	c = get_conn(smc);
	if (c) {
		if (rd_u64(conn, off_conn_rx_prod) != e->v0) {	/* new data arrived */
			c->rx_last_ns = now;
			if (!c->rx_since_ns)
				c->rx_since_ns = now;
		}
		/* the peer's consumer cursor came with it: room in the send buffer? */
		sndbuf_check(c, conn, now);
	}
	bpf_map_delete_elem(&mon_entry, &k);
	return 0;
}

SEC("kprobe/smc_rx_recvmsg")
int BPF_KPROBE(mon_recvmsg_enter, void *smc)
{
	struct entry_val e = { .smc = (__u64)smc };
	__u64 k = entry_key(H_RECVMSG);

	bpf_map_update_elem(&mon_entry, &k, &e, BPF_ANY);
	return 0;
}

SEC("kretprobe/smc_rx_recvmsg")
int BPF_KRETPROBE(mon_recvmsg_exit, long ret)
{
	__u64 k = entry_key(H_RECVMSG), now = bpf_ktime_get_ns();
	struct entry_val *e = bpf_map_lookup_elem(&mon_entry, &k);
	const void *smc;
	struct mon_conn *c;

	if (!e)
		return 0;
	smc = (const void *)e->smc;
	bpf_map_delete_elem(&mon_entry, &k);
	if (ret <= 0)
		return 0;
	c = get_conn(smc);
	if (!c)
		return 0;
	sample(c, MON_RX_CONSUME, c->rx_since_ns, now);
	c->rx_since_ns = rd_u32(conn_of(smc), off_conn_bytes_to_rcv) ? c->rx_last_ns : 0;
	return 0;
}

/* ---- sender: tx_sndbuf_full, tx_peer_win ---- */

SEC("kprobe/smc_tx_sndbuf_nonempty")
int BPF_KPROBE(mon_tx_nonempty, void *conn)
{
	const void *smc = smc_of_conn(conn);
	__u64 now = bpf_ktime_get_ns();
	struct mon_conn *c = get_conn(smc);

	if (!c)
		return 0;
	if (!rd_u32(conn, off_conn_sndbuf_space)) {
		if (!c->sndbuf_since_ns)
			c->sndbuf_since_ns = now;
	} else {
		sndbuf_check(c, conn, now);
	}
	if (!rd_u32(conn, off_conn_peer_rmbe_space)) {
		if (!c->peerwin_since_ns)
			c->peerwin_since_ns = now;
	} else if (c->peerwin_since_ns) {
		sample(c, MON_TX_PEER_WIN, c->peerwin_since_ns, now);
		c->peerwin_since_ns = 0;
	}
	return 0;
}

/* smc_tx_sendmsg(smc, msg, len): the writer is back (after any wait for room). */
SEC("kprobe/smc_tx_sendmsg")
int BPF_KPROBE(mon_tx_sendmsg, void *smc)
{
	struct mon_conn *c = get_conn(smc);

	if (c)
		sndbuf_check(c, conn_of(smc), bpf_ktime_get_ns());
	return 0;
}

/* ---- SMC-R: cdc_tx_compl ---- */

/* smc_cdc_msg_send(conn, ...): the pend will carry ctrl_seq = tx_cdc_seq as of now. */
SEC("kprobe/smc_cdc_msg_send")
int BPF_KPROBE(mon_cdc_send, void *conn)
{
	struct pend_key k = { .conn = (__u64)conn, .seq = rd_u16(conn, off_conn_tx_cdc_seq) };
	__u64 ts = bpf_ktime_get_ns();

	bpf_map_update_elem(&mon_pend, &k, &ts, BPF_ANY);
	return 0;
}

/* smc_cdc_tx_handler(pend copy, link, wc_status) */
SEC("kprobe/smc_cdc_tx_handler")
int BPF_KPROBE(mon_cdc_tx_done, void *pend)
{
	__u64 now = bpf_ktime_get_ns(), *ts;
	const void *conn = rd_ptr(pend, off_pend_conn);
	struct pend_key k = { .conn = (__u64)conn, .seq = rd_u16(pend, off_pend_ctrl_seq) };
	struct mon_conn *c;

	if (!conn)
		return 0;
	ts = bpf_map_lookup_elem(&mon_pend, &k);
	if (!ts)
		return 0;
	c = get_conn(smc_of_conn(conn));
	if (c) {
		sample(c, MON_CDC_TX_COMPL, *ts, now);
		/* SMC-R frees send buffer space on completion */
		sndbuf_check(c, conn, now);
	}
	bpf_map_delete_elem(&mon_pend, &k);
	return 0;
}

/* ---- close ---- */

SEC("kprobe/smc_release")
int BPF_KPROBE(mon_release, void *sock)
{
	__u64 key = (__u64)rd_ptr(sock, off_socket_sk);
	struct mon_conn *c = key ? bpf_map_lookup_elem(&mon_conns, &key) : 0;

	if (c)
		c->closed_ns = bpf_ktime_get_ns();
	return 0;
}
