// SPDX-License-Identifier: GPL-2.0
/*
 * smc_record.bpf.c: the kernel half of smc-record. One program per hook on
 * the SMC module (kprobe/kretprobe by kallsyms name, raw_tp for the two
 * tracepoints), each turning one SMC step into one record of
 * format-spec/include/smctrace_event.h in the "events" ring buffer.
 *
 * Why offsets and not CO-RE: every SMC type lives in the split BTF of smc.ko,
 * which aya 0.14 cannot relocate against. The loader resolves each member we
 * read from /sys/kernel/btf/{vmlinux,smc} and writes the byte offsets into the
 * off_* read-only globals below before loading; a probe whose members are
 * missing on the running kernel is simply not attached. Every kernel read is a
 * bpf_probe_read_kernel at base + offset, so a wrong pointer yields zeros,
 * never a fault.
 *
 * Cost discipline: counters first, then the cheapest filter check, then one
 * ring buffer reservation; nothing is formatted here. A failed reservation is
 * counted per CPU in "lost" (written to the recording's trailer).
 */
#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "smctrace_event.h"
#include "smc_record.h"
#include "kread.h"
#include "offsets.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Every kprobe/kretprobe program has an fentry/fexit twin (same name + "_fe")
 * that calls the same body; the loader attaches the twin where the kernel
 * allows (BPF_PROG_TYPE_TRACING on the module function, see
 * recorder/src/fentry.rs) and the kprobe otherwise. Arguments and return
 * values are fetched with bpf_get_func_arg/ret (inlined by the verifier):
 * they come back as plain scalars, so the shared bodies do the same pointer
 * arithmetic and hashing as under kprobes (a BTF-typed pointer read straight
 * from ctx could not be XORed or used as a map key).
 */
#define FARG(n) ({ __u64 __v = 0; bpf_get_func_arg(ctx, (n), &__v); __v; })
#define FRET() ({ __u64 __v = 0; bpf_get_func_ret(ctx, &__v); __v; })
#define TRACING(name) name(__u64 *ctx)

/* ---- configuration written by the loader (EbpfLoader::set_global) ---- */

volatile const __u64 sock_key0 = 0;	/* keyed transform of kernel addresses */
volatile const __u64 sock_key1 = 0;
volatile const __u32 filter_flags = 0;	/* FLT_* */
volatile const __u32 payload_bytes = 0;	/* --payload N (<= ST_PAYLOAD_MAX) */
volatile const __u64 wakeup_bytes = 262144; /* wake the reader once this much is queued */

/* member offsets only the recorder reads (the shared ones: offsets.h) */
/* vmlinux members */
volatile const __u32 off_skc_state = 0;
volatile const __u32 off_skc_net = 0;
volatile const __u32 off_net_ns_inum = 0;
/* ib_core members (found in smc.ko's BTF) */
volatile const __u32 off_ib_qp_qp_num = 0;
volatile const __u32 off_ib_wc_status = 0;
/* smc.ko members */
volatile const __u32 off_smc_use_fallback = 0;
volatile const __u32 off_smc_fallback_rsn = 0;
volatile const __u32 off_smc_peer_diagnosis = 0;
volatile const __u32 off_smc_listen_work = 0;
volatile const __u32 off_conn_lnk = 0;
volatile const __u32 off_conn_peer_token = 0;
volatile const __u32 off_conn_rmb_desc = 0;
volatile const __u32 off_conn_sndbuf_desc = 0;
volatile const __u32 off_conn_peer_rmbe_size = 0;
volatile const __u32 off_conn_tx_curs_prep = 0;
volatile const __u32 off_conn_tx_curs_sent = 0;
volatile const __u32 off_conn_killed = 0;
volatile const __u32 bit_conn_killed = 0;
volatile const __u32 off_conn_tx_work = 0;
volatile const __u32 off_conn_rx_tsklet = 0;
volatile const __u32 off_conn_tx_token = 0;	/* local_tx_ctrl.token */
volatile const __u32 off_conn_tx_prod = 0;	/* local_tx_ctrl.prod */
volatile const __u32 off_conn_tx_cons = 0;	/* local_tx_ctrl.cons */
volatile const __u32 off_conn_tx_seqno = 0;	/* local_tx_ctrl.seqno */
volatile const __u32 off_conn_tx_prod_flags = 0;
volatile const __u32 off_conn_tx_cs_flags = 0;
volatile const __u32 off_conn_rx_cons = 0;
volatile const __u32 off_conn_rx_seqno = 0;
volatile const __u32 off_conn_rx_prod_flags = 0;
volatile const __u32 off_conn_rx_cs_flags = 0;
volatile const __u32 off_buf_cpu_addr = 0;
volatile const __u32 off_buf_len = 0;
volatile const __u32 off_buf_token = 0;
volatile const __u32 off_lnk_roce_qp = 0;
volatile const __u32 off_lnk_peer_qpn = 0;
volatile const __u32 off_lnk_link_id = 0;
volatile const __u32 off_lnk_ibname = 0;
volatile const __u32 off_lnk_lgr = 0;
volatile const __u32 off_lnk_state = 0;
volatile const __u32 off_lgr_smc_version = 0;
volatile const __u32 off_pend_p_cursor = 0;

/* ---- maps ---- */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);	/* resized by the loader (--buffer) */
} events SEC(".maps");

/* Reservations that failed, per CPU: never a silent loss. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Calls seen per probe (before filtering), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, P_NR);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

/* Entry state of a function, picked up by its return probe. */
struct stash {
	__u64 enter_ns;
	__u64 a0, a1, a2;	/* arguments needed at return */
	__u64 v0;		/* a value read at entry (cursor before) */
};

/*
 * The stashes of a task, one slot per probe (bit p of `live`: slot p is
 * taken), in BPF task storage: one lookup of the current task's storage
 * instead of an update, a lookup and a delete in a hash keyed by tid. The
 * softirqs of an idle CPU run on that CPU's idle task, whose storage is its own.
 */
struct task_stashes {
	__u64 live;
	struct stash s[P_NR];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_stashes);
} stashes SEC(".maps");

/* smc_sock address -> CONN_OK | TASK_OK (only used when filters are set). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} conns SEC(".maps");

/* alert_token_local -> smc_sock address, to name the socket of a received CDC. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} tokens SEC(".maps");

/* Filter sets (presence = match), filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} filter_pids SEC(".maps");

struct comm_key { char c[ST_COMM_LEN]; };
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct comm_key);
	__type(value, __u8);
} filter_comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} filter_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u8);
} filter_netns SEC(".maps");

/* --conn: (local port << 16 | remote port), host order, of the clcsock. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} filter_conns SEC(".maps");

/* ---- small helpers ---- */


/* union smc_host_cursor: {u16 reserved; u16 wrap; u32 count} over an atomic64. */
static __always_inline void curs_from_raw(struct st_curs *c, __u64 raw)
{
	c->count = raw >> 32;
	c->wrap = (raw >> 16) & 0xffff;
	c->_pad = 0;
}

static __always_inline void rd_curs(struct st_curs *c, const void *base, __u32 off)
{
	curs_from_raw(c, rd_u64(base, off));
}

/*
 * Keyed transform of a kernel address: xor with key0, murmur3's 64-bit
 * finalizer (a bijection, so distinct sockets stay distinct), xor with key1.
 * Hides the address from the recording; not a cryptographic MAC.
 */
static __always_inline __u64 sock_id(const void *p)
{
	__u64 x = (__u64)p;

	if (!x)
		return 0;
	x ^= sock_key0;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	x ^= sock_key1;
	return x ? x : 1;
}

static __always_inline void count_hit(__u32 probe)
{
	__u64 *v = bpf_map_lookup_elem(&hits, &probe);

	if (v)
		*v += 1;
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&lost, &zero);

	if (v)
		*v += 1;
}

static __always_inline void fill_hdr(struct st_hdr *h, __u16 kind, __u16 len)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	h->kind = kind;
	h->len = len;
	h->cpu = bpf_get_smp_processor_id();
	h->flags = 0;
	h->ts_ns = bpf_ktime_get_ns();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
}

/*
 * Reserve one zeroed record of type T (or count the loss and leave the
 * program). Zeroing keeps padding and unfilled fields at 0.
 */
#define RESERVE(T, ev, KIND)						\
	T *ev = bpf_ringbuf_reserve(&events, sizeof(T), 0);		\
	if (!ev) {							\
		count_lost();						\
		return 0;						\
	}								\
	__builtin_memset(ev, 0, sizeof(T));				\
	fill_hdr(&ev->hdr, KIND, sizeof(T))

/* Wake the reader only when enough is queued; it also polls every 50 ms. */
static __always_inline void submit(void *ev)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	bpf_ringbuf_submit(ev, avail >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

_Static_assert(P_NR <= 64, "one live bit per probe");

static __always_inline struct task_stashes *task_stashes(__u64 flags)
{
	return bpf_task_storage_get(&stashes, bpf_get_current_task_btf(), 0, flags);
}

static __always_inline struct stash *stash_take(__u32 probe, struct stash *out)
{
	struct task_stashes *t = task_stashes(0);
	__u64 bit = 1ULL << probe;

	if (!t || probe >= P_NR || !(t->live & bit))
		return 0;
	*out = t->s[probe];
	t->live &= ~bit;
	return out;
}

static __always_inline void stash_put(__u32 probe, struct stash *s)
{
	struct task_stashes *t = task_stashes(BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!t || probe >= P_NR)
		return;
	t->s[probe] = *s;
	t->live |= 1ULL << probe;
}

static __always_inline const void *conn_of(const void *smc)
{
	return AT(smc, off_smc_conn);
}

static __always_inline const void *smc_of_conn(const void *conn)
{
	return (const void *)((const char *)conn - off_smc_conn);
}

/* ---- filters ---- */

static __always_inline bool task_matches(void)
{
	if (filter_flags & FLT_PID) {
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;

		if (bpf_map_lookup_elem(&filter_pids, &tgid))
			return true;
	}
	if (filter_flags & FLT_COMM) {
		struct comm_key c = {};

		bpf_get_current_comm(&c.c, sizeof(c.c));
		if (bpf_map_lookup_elem(&filter_comms, &c))
			return true;
	}
	return false;
}

static __always_inline __u8 need_bits(void)
{
	__u8 need = 0;

	if (filter_flags & (FLT_PORT | FLT_NETNS | FLT_CONN))
		need |= CONN_OK;
	if (filter_flags & (FLT_PID | FLT_COMM))
		need |= TASK_OK;
	return need;
}

/*
 * Is this socket recorded? task_ctx: we run in the process that uses the
 * socket, so a pid/comm match marks the socket for its softirq events too.
 */
static __always_inline bool clc_pass(const void *smc);

static __always_inline bool sock_wanted(const void *smc, bool task_ctx)
{
	__u64 key = (__u64)smc;
	__u8 need, have = 0, *st;

	if (!filter_flags)
		return true;
	need = need_bits();
	st = bpf_map_lookup_elem(&conns, &key);
	if (st) {
		have = *st;
	} else if (need & CONN_OK) {
		/*
		 * Connected before the recording began (no handshake seen):
		 * judge its identity now, once.
		 */
		have = clc_pass(smc) ? CONN_OK : 0;
		bpf_map_update_elem(&conns, &key, &have, BPF_ANY);
	}
	if (task_ctx && (need & TASK_OK) && !(have & TASK_OK) && task_matches()) {
		have |= TASK_OK;
		bpf_map_update_elem(&conns, &key, &have, BPF_ANY);
	}
	return (have & need) == need;
}

/* Connection-level filters (port, netns): does this identity pass? */
static __always_inline bool conn_pass(__u16 lport, __u16 rport, __u64 netns)
{
	bool ok = true;

	if (filter_flags & FLT_PORT)
		ok = bpf_map_lookup_elem(&filter_ports, &lport) ||
		     bpf_map_lookup_elem(&filter_ports, &rport);
	if (ok && (filter_flags & FLT_NETNS))
		ok = bpf_map_lookup_elem(&filter_netns, &netns) != 0;
	if (ok && (filter_flags & FLT_CONN)) {
		__u32 pair = ((__u32)lport << 16) | rport;

		ok = bpf_map_lookup_elem(&filter_conns, &pair) != 0;
	}
	return ok;
}

/*
 * Set the bits of `mask` in the socket's filter state to `bits`. Kernel
 * addresses are reused: a new connection on the same smc_sock must not
 * inherit the verdict of the previous one, so the bits are assigned, not ORed.
 */
static __always_inline void conn_state_set(const void *smc, __u8 mask, __u8 bits)
{
	__u64 key = (__u64)smc;
	__u8 have = 0, *st;

	st = bpf_map_lookup_elem(&conns, &key);
	if (st)
		have = *st;
	have = (have & ~mask) | (bits & mask);
	bpf_map_update_elem(&conns, &key, &have, BPF_ANY);
}

static __always_inline __u64 sk_netns(const void *sk)
{
	const void *net = rd_ptr(sk, off_skc_net);

	return net ? rd_u32(net, off_net_ns_inum) : 0;
}

/* TCP ports of the clcsock: local (host order) and remote (host order). */
static __always_inline const void *clc_sk(const void *smc)
{
	const void *clcsock = rd_ptr(smc, off_smc_clcsock);

	return clcsock ? rd_ptr(clcsock, off_socket_sk) : 0;
}

static __always_inline bool clc_pass(const void *smc)
{
	const void *clcsk = clc_sk(smc);
	__u16 lport = 0, rport = 0;

	if (clcsk) {
		lport = rd_u16(clcsk, off_skc_num);
		rport = __builtin_bswap16(rd_u16(clcsk, off_skc_dport));
	}
	return conn_pass(lport, rport, sk_netns(smc));
}

/* ---- connection lifecycle ---- */

static __always_inline int on_connect_enter(void *sock, void *addr)
{
	const void *smc;
	__u16 family, port;
	__u64 netns;

	count_hit(P_CONNECT);
	smc = rd_ptr(sock, off_socket_sk);
	if (!smc)
		return 0;
	family = rd_u16(addr, 0);
	port = __builtin_bswap16(rd_u16(addr, 2));
	netns = sk_netns(smc);
	if (filter_flags) {
		/* a new connection: forget what this address was used for before */
		__u8 bits = (conn_pass(0, port, netns) ? CONN_OK : 0) | (task_matches() ? TASK_OK : 0);

		conn_state_set(smc, CONN_OK | TASK_OK, bits);
		if (!sock_wanted(smc, false))
			return 0;
	}

	RESERVE(struct st_connect, ev, ST_EV_CONNECT);
	ev->sock = sock_id(smc);
	ev->netns = netns;
	ev->family = family;
	ev->dst.port = port;
	if (family == 10 /* AF_INET6 */)
		bpf_probe_read_kernel(ev->dst.addr, 16, AT(addr, 8));
	else
		bpf_probe_read_kernel(ev->dst.addr, 4, AT(addr, 4));
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	submit(ev);
	return 0;
}

SEC("kprobe/smc_connect")
int BPF_KPROBE(connect_enter, void *sock, void *addr)
{
	return on_connect_enter(sock, addr);
}

SEC("fentry/smc_connect")
int TRACING(connect_enter_fe)
{
	return on_connect_enter((void *)FARG(0), (void *)FARG(1));
}

static __always_inline int hs_enter(__u32 probe, const void *smc, bool server)
{
	struct stash s = {};

	count_hit(probe);
	/*
	 * The clcsock is connected (client) or accepted (server) by now, so the
	 * port/netns verdict is known before the CLC messages. A server socket is
	 * new: its task verdict starts empty (the handshake runs in a worker).
	 */
	if (filter_flags)
		conn_state_set(smc, server ? (CONN_OK | TASK_OK) : CONN_OK, clc_pass(smc) ? CONN_OK : 0);
	s.enter_ns = bpf_ktime_get_ns();
	s.a0 = (__u64)smc;
	stash_put(probe, &s);
	return 0;
}

static __always_inline void rd_endpoint_v4(struct st_endpoint *e, const void *sk, __u32 off)
{
	bpf_probe_read_kernel(e->addr, 4, AT(sk, off));
}

static __always_inline int hs_exit(__u32 probe, __u8 role, long rc)
{
	struct stash s;
	const void *smc, *conn, *clcsk, *lnk, *lgr, *buf;
	__u16 family = 0, lport = 0, rport = 0;
	__u64 netns;
	__u32 token;

	if (!stash_take(probe, &s))
		return 0;
	smc = (const void *)s.a0;
	conn = conn_of(smc);
	clcsk = clc_sk(smc);
	if (clcsk) {
		family = rd_u16(clcsk, off_skc_family);
		lport = rd_u16(clcsk, off_skc_num);
		rport = __builtin_bswap16(rd_u16(clcsk, off_skc_dport));
	}
	netns = sk_netns(smc);
	token = rd_u32(conn, off_conn_alert_token_local);
	if (filter_flags)
		conn_state_set(smc, CONN_OK, conn_pass(lport, rport, netns) ? CONN_OK : 0);
	if (!sock_wanted(smc, role == ST_ROLE_CLIENT))
		return 0;
	if (token && filter_flags) {
		__u64 v = (__u64)smc;

		bpf_map_update_elem(&tokens, &token, &v, BPF_ANY);
	}

	RESERVE(struct st_conn_info, ev, ST_EV_CONN_INFO);
	ev->sock = sock_id(smc);
	ev->netns = netns;
	ev->family = family;
	ev->role = role;
	ev->rc = rc;
	ev->local.port = lport;
	ev->remote.port = rport;
	if (clcsk) {
		if (family == 10) {
			bpf_probe_read_kernel(ev->local.addr, 16, AT(clcsk, off_skc_v6_rcv_saddr));
			bpf_probe_read_kernel(ev->remote.addr, 16, AT(clcsk, off_skc_v6_daddr));
		} else {
			rd_endpoint_v4(&ev->local, clcsk, off_skc_rcv_saddr);
			rd_endpoint_v4(&ev->remote, clcsk, off_skc_daddr);
		}
	}
	ev->fallback_rsn = rd_u32(smc, off_smc_fallback_rsn);
	ev->peer_diagnosis = rd_u32(smc, off_smc_peer_diagnosis);
	ev->local_token = token;
	ev->peer_token = rd_u32(conn, off_conn_tx_token);
	ev->peer_rmbe_size = rd_u32(conn, off_conn_peer_rmbe_size);
	lgr = rd_ptr(conn, off_conn_lgr);
	lnk = rd_ptr(conn, off_conn_lnk);
	if (rd_u8(smc, off_smc_use_fallback))
		ev->mode = ST_MODE_FALLBACK;
	else if (!lgr)
		ev->mode = ST_MODE_UNKNOWN;
	else if (rd_u8(lgr, off_lgr_is_smcd))
		ev->mode = ST_MODE_SMCD;
	else
		ev->mode = ST_MODE_SMCR;
	if (lgr) {
		ev->lgr = sock_id(lgr);
		ev->smc_version = rd_u8(lgr, off_lgr_smc_version);
	}
	buf = rd_ptr(conn, off_conn_sndbuf_desc);
	if (buf)
		ev->sndbuf_len = rd_u32(buf, off_buf_len);
	buf = rd_ptr(conn, off_conn_rmb_desc);
	if (buf) {
		ev->rmb_len = rd_u32(buf, off_buf_len);
		if (ev->mode == ST_MODE_SMCD)
			ev->local_dmb_token = rd_u64(buf, off_buf_token);
	}
	if (ev->mode == ST_MODE_SMCD)
		ev->peer_dmb_token = rd_u64(conn, off_conn_peer_token);
	if (lnk && ev->mode == ST_MODE_SMCR) {
		const void *qp = rd_ptr(lnk, off_lnk_roce_qp);

		if (qp)
			ev->qpn = rd_u32(qp, off_ib_qp_qp_num);
		ev->peer_qpn = rd_u32(lnk, off_lnk_peer_qpn);
		ev->link_id = rd_u8(lnk, off_lnk_link_id);
		bpf_probe_read_kernel(ev->ibname, sizeof(ev->ibname), AT(lnk, off_lnk_ibname));
		ev->ibname[ST_IBNAME_LEN - 1] = 0;
	}
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	submit(ev);
	return 0;
}

SEC("kprobe/__smc_connect")
int BPF_KPROBE(hs_client_enter, void *smc)
{
	return hs_enter(P_HS_CLIENT, smc, false);
}

SEC("kretprobe/__smc_connect")
int BPF_KRETPROBE(hs_client_exit, long rc)
{
	return hs_exit(P_HS_CLIENT, ST_ROLE_CLIENT, (int)rc);
}

SEC("fentry/__smc_connect")
int TRACING(hs_client_enter_fe)
{
	return hs_enter(P_HS_CLIENT, (void *)FARG(0), false);
}

SEC("fexit/__smc_connect")
int TRACING(hs_client_exit_fe)
{
	return hs_exit(P_HS_CLIENT, ST_ROLE_CLIENT, (int)FRET());
}

SEC("kprobe/smc_listen_work")
int BPF_KPROBE(hs_server_enter, void *work)
{
	return hs_enter(P_HS_SERVER, (const char *)work - off_smc_listen_work, true);
}

SEC("kretprobe/smc_listen_work")
int BPF_KRETPROBE(hs_server_exit)
{
	return hs_exit(P_HS_SERVER, ST_ROLE_SERVER, 0);
}

SEC("fentry/smc_listen_work")
int TRACING(hs_server_enter_fe)
{
	return hs_enter(P_HS_SERVER, (const char *)FARG(0) - off_smc_listen_work, true);
}

SEC("fexit/smc_listen_work")
int TRACING(hs_server_exit_fe)
{
	return hs_exit(P_HS_SERVER, ST_ROLE_SERVER, 0);
}

/* CLC messages sent: the type is known from the function; rc at return. */
static __always_inline int clc_tx_enter(__u32 probe, const void *smc, __u64 version, __u64 diag)
{
	struct stash s = {};

	count_hit(probe);
	if (!sock_wanted(smc, true))
		return 0;
	s.enter_ns = bpf_ktime_get_ns();
	s.a0 = (__u64)smc;
	s.a1 = version;
	s.a2 = diag;
	stash_put(probe, &s);
	return 0;
}

static __always_inline int clc_tx_exit(__u32 probe, __u8 type, long rc)
{
	struct stash s;

	if (!stash_take(probe, &s))
		return 0;
	RESERVE(struct st_clc, ev, ST_EV_CLC);
	ev->sock = sock_id((const void *)s.a0);
	ev->dir = ST_DIR_TX;
	ev->type = type;
	ev->version = s.a1;
	ev->rc = rc;
	ev->decline_diag = s.a2;
	if (s.v0) {
		/* header of the accept/confirm as built (clc_build below), wire order */
		__u8 *h = (__u8 *)&s.v0;
		__u32 eye = ((__u32)h[0] << 24) | ((__u32)h[1] << 16) | ((__u32)h[2] << 8) | h[3];

		ev->length = ((__u16)h[5] << 8) | h[6];
		ev->version = h[7] >> 4;
		ev->path = eye == 0xE2D4C3C4 ? 'D' : eye == 0xE2D4C3D9 ? 'R' : 0;
	}
	submit(ev);
	return 0;
}

/*
 * smc_clc_send_confirm_accept(smc, clc, first_contact, version, eid, ini)
 * builds the accept or confirm that smc_clc_send_accept/confirm then send:
 * at its return the header (eyecatcher, type, length, version) is complete,
 * and is copied into the stash of the enclosing send, whose return emits it.
 */
static __always_inline int on_clc_build_enter(void *smc, void *clc)
{
	struct stash s = {};

	count_hit(P_CLC_BUILD);
	if (!sock_wanted(smc, true))
		return 0;
	s.a0 = (__u64)clc;
	stash_put(P_CLC_BUILD, &s);
	return 0;
}

static __always_inline int on_clc_build_exit(void)
{
	struct task_stashes *t;
	struct stash s;
	__u64 hdr = 0;

	if (!stash_take(P_CLC_BUILD, &s))
		return 0;
	bpf_probe_read_kernel(&hdr, sizeof(hdr), (const void *)s.a0);
	t = task_stashes(0);
	if (!t)
		return 0;
	if (t->live & (1ULL << P_CLC_ACCEPT))
		t->s[P_CLC_ACCEPT].v0 = hdr;
	else if (t->live & (1ULL << P_CLC_CONFIRM))
		t->s[P_CLC_CONFIRM].v0 = hdr;
	return 0;
}

SEC("kprobe/smc_clc_send_confirm_accept")
int BPF_KPROBE(clc_build_enter, void *smc, void *clc)
{
	return on_clc_build_enter(smc, clc);
}

SEC("kretprobe/smc_clc_send_confirm_accept")
int BPF_KRETPROBE(clc_build_exit)
{
	return on_clc_build_exit();
}

SEC("fentry/smc_clc_send_confirm_accept")
int TRACING(clc_build_enter_fe)
{
	return on_clc_build_enter((void *)FARG(0), (void *)FARG(1));
}

SEC("fexit/smc_clc_send_confirm_accept")
int TRACING(clc_build_exit_fe)
{
	return on_clc_build_exit();
}

SEC("kprobe/smc_clc_send_proposal")
int BPF_KPROBE(clc_proposal_enter, void *smc)
{
	return clc_tx_enter(P_CLC_PROPOSAL, smc, 0, 0);
}

SEC("kretprobe/smc_clc_send_proposal")
int BPF_KRETPROBE(clc_proposal_exit, long rc)
{
	return clc_tx_exit(P_CLC_PROPOSAL, 1, (int)rc);
}

SEC("fentry/smc_clc_send_proposal")
int TRACING(clc_proposal_enter_fe)
{
	return clc_tx_enter(P_CLC_PROPOSAL, (void *)FARG(0), 0, 0);
}

SEC("fexit/smc_clc_send_proposal")
int TRACING(clc_proposal_exit_fe)
{
	return clc_tx_exit(P_CLC_PROPOSAL, 1, (int)FRET());
}

SEC("kprobe/smc_clc_send_accept")
int BPF_KPROBE(clc_accept_enter, void *smc, int first_contact, __u8 version)
{
	return clc_tx_enter(P_CLC_ACCEPT, smc, version, 0);
}

SEC("kretprobe/smc_clc_send_accept")
int BPF_KRETPROBE(clc_accept_exit, long rc)
{
	return clc_tx_exit(P_CLC_ACCEPT, 2, (int)rc);
}

SEC("fentry/smc_clc_send_accept")
int TRACING(clc_accept_enter_fe)
{
	return clc_tx_enter(P_CLC_ACCEPT, (void *)FARG(0), (__u8)FARG(2), 0);
}

SEC("fexit/smc_clc_send_accept")
int TRACING(clc_accept_exit_fe)
{
	return clc_tx_exit(P_CLC_ACCEPT, 2, (int)FRET());
}

SEC("kprobe/smc_clc_send_confirm")
int BPF_KPROBE(clc_confirm_enter, void *smc, int first_contact, __u8 version)
{
	return clc_tx_enter(P_CLC_CONFIRM, smc, version, 0);
}

SEC("kretprobe/smc_clc_send_confirm")
int BPF_KRETPROBE(clc_confirm_exit, long rc)
{
	return clc_tx_exit(P_CLC_CONFIRM, 3, (int)rc);
}

SEC("fentry/smc_clc_send_confirm")
int TRACING(clc_confirm_enter_fe)
{
	return clc_tx_enter(P_CLC_CONFIRM, (void *)FARG(0), (__u8)FARG(2), 0);
}

SEC("fexit/smc_clc_send_confirm")
int TRACING(clc_confirm_exit_fe)
{
	return clc_tx_exit(P_CLC_CONFIRM, 3, (int)FRET());
}

SEC("kprobe/smc_clc_send_decline")
int BPF_KPROBE(clc_decline_enter, void *smc, __u32 diag, __u8 version)
{
	return clc_tx_enter(P_CLC_DECLINE, smc, version, diag);
}

SEC("kretprobe/smc_clc_send_decline")
int BPF_KRETPROBE(clc_decline_exit, long rc)
{
	return clc_tx_exit(P_CLC_DECLINE, 4, (int)rc);
}

SEC("fentry/smc_clc_send_decline")
int TRACING(clc_decline_enter_fe)
{
	return clc_tx_enter(P_CLC_DECLINE, (void *)FARG(0), (__u8)FARG(2), (__u32)FARG(1));
}

SEC("fexit/smc_clc_send_decline")
int TRACING(clc_decline_exit_fe)
{
	return clc_tx_exit(P_CLC_DECLINE, 4, (int)FRET());
}

/* CLC messages received: smc_clc_wait_msg(smc, buf, buflen, type, timeout). */
static __always_inline int on_clc_wait_enter(void *smc, void *buf)
{
	struct stash s = {};

	count_hit(P_CLC_WAIT);
	if (!sock_wanted(smc, true))
		return 0;
	s.enter_ns = bpf_ktime_get_ns();
	s.a0 = (__u64)smc;
	s.a1 = (__u64)buf;
	stash_put(P_CLC_WAIT, &s);
	return 0;
}

SEC("kprobe/smc_clc_wait_msg")
int BPF_KPROBE(clc_wait_enter, void *smc, void *buf)
{
	return on_clc_wait_enter(smc, buf);
}

SEC("fentry/smc_clc_wait_msg")
int TRACING(clc_wait_enter_fe)
{
	return on_clc_wait_enter((void *)FARG(0), (void *)FARG(1));
}

static __always_inline int on_clc_wait_exit(int rc)
{
	struct stash s;
	__u8 hdr[8] = {};
	__u32 eye;

	if (!stash_take(P_CLC_WAIT, &s))
		return 0;
	bpf_probe_read_kernel(hdr, sizeof(hdr), (const void *)s.a1);
	RESERVE(struct st_clc, ev, ST_EV_CLC);
	ev->sock = sock_id((const void *)s.a0);
	ev->dir = ST_DIR_RX;
	ev->rc = rc;
	eye = ((__u32)hdr[0] << 24) | ((__u32)hdr[1] << 16) | ((__u32)hdr[2] << 8) | hdr[3];
	if (eye == 0xE2D4C3D9 || eye == 0xE2D4C3C4) {
		ev->type = hdr[4];
		ev->length = ((__u16)hdr[5] << 8) | hdr[6];
		ev->version = hdr[7] >> 4;
		ev->path = eye == 0xE2D4C3C4 ? 'D' : 'R';
		/*
		 * A proposal always uses the SMCR eyecatcher; what it offers is in
		 * typev2 (bits 3-2, v2) or typev1 (bits 1-0): SMC_TYPE_R 0, D 1,
		 * N 2 (none), B 3 (both).
		 */
		if (ev->type == 1) {
			__u8 t = (hdr[7] >> 2) & 3;

			if (ev->version < 2 || t == 2)
				t = hdr[7] & 3;
			ev->path = t == 0 ? 'R' : t == 1 ? 'D' : t == 3 ? 'B' : 0;
		}
		if (ev->type == 4) {
			__be32 d = 0;

			bpf_probe_read_kernel(&d, 4, (const void *)(s.a1 + 16));
			ev->decline_diag = __builtin_bswap32(d);
		}
	}
	submit(ev);
	return 0;
}

SEC("kretprobe/smc_clc_wait_msg")
int BPF_KRETPROBE(clc_wait_exit, long rc)
{
	return on_clc_wait_exit((int)rc);
}

SEC("fexit/smc_clc_wait_msg")
int TRACING(clc_wait_exit_fe)
{
	return on_clc_wait_exit((int)FRET());
}

SEC("raw_tp/smc_switch_to_fallback")
int BPF_PROG(fallback, void *smc, int reason)
{
	count_hit(P_FALLBACK);
	if (!sock_wanted(smc, true))
		return 0;
	RESERVE(struct st_fallback, ev, ST_EV_FALLBACK);
	ev->sock = sock_id(smc);
	ev->reason = reason;
	ev->peer_diagnosis = rd_u32(smc, off_smc_peer_diagnosis);
	submit(ev);
	return 0;
}

static __always_inline int on_release_enter(void *sock)
{
	const void *smc;

	count_hit(P_RELEASE);
	smc = rd_ptr(sock, off_socket_sk);
	if (!smc || !sock_wanted(smc, true))
		return 0;
	/* the owner closes: a socket never connected may carry an older verdict */
	if ((filter_flags & (FLT_PID | FLT_COMM)) && !task_matches())
		return 0;
	RESERVE(struct st_close, ev, ST_EV_CLOSE);
	ev->sock = sock_id(smc);
	ev->state = rd_u8(smc, off_skc_state);
	ev->killed = (rd_u8(conn_of(smc), off_conn_killed) >> bit_conn_killed) & 1;
	submit(ev);
	return 0;
}

SEC("kprobe/smc_release")
int BPF_KPROBE(release_enter, void *sock)
{
	return on_release_enter(sock);
}

SEC("fentry/smc_release")
int TRACING(release_enter_fe)
{
	return on_release_enter((void *)FARG(0));
}

SEC("raw_tp/smcr_link_down")
int BPF_PROG(link_down, void *lnk)
{
	count_hit(P_LINK_DOWN);
	RESERVE(struct st_link_down, ev, ST_EV_LINK_DOWN);
	ev->lgr = sock_id(rd_ptr(lnk, off_lnk_lgr));
	ev->link_id = rd_u8(lnk, off_lnk_link_id);
	ev->state = rd_u32(lnk, off_lnk_state);
	bpf_probe_read_kernel(ev->ibname, sizeof(ev->ibname), AT(lnk, off_lnk_ibname));
	ev->ibname[ST_IBNAME_LEN - 1] = 0;
	submit(ev);
	return 0;
}

/* ---- sender ---- */

static __always_inline int on_sendmsg_enter(void *sock, __u64 len)
{
	struct stash s = {};
	const void *smc;

	count_hit(P_SENDMSG);
	smc = rd_ptr(sock, off_socket_sk);
	if (!smc || !sock_wanted(smc, true))
		return 0;
	s.enter_ns = bpf_ktime_get_ns();
	s.a0 = (__u64)smc;
	s.a1 = len;
	stash_put(P_SENDMSG, &s);
	return 0;
}

SEC("kprobe/smc_sendmsg")
int BPF_KPROBE(sendmsg_enter, void *sock, void *msg, __u64 len)
{
	return on_sendmsg_enter(sock, len);
}

SEC("fentry/smc_sendmsg")
int TRACING(sendmsg_enter_fe)
{
	return on_sendmsg_enter((void *)FARG(0), FARG(2));
}

static __always_inline int on_sendmsg_exit(long ret)
{
	struct stash s;

	if (!stash_take(P_SENDMSG, &s))
		return 0;
	RESERVE(struct st_sendmsg, ev, ST_EV_SENDMSG);
	ev->sock = sock_id((const void *)s.a0);
	ev->enter_ns = s.enter_ns;
	ev->len = s.a1;
	ev->ret = ret;
	submit(ev);
	return 0;
}

SEC("kretprobe/smc_sendmsg")
int BPF_KRETPROBE(sendmsg_exit, long ret)
{
	return on_sendmsg_exit((int)ret);
}

SEC("fexit/smc_sendmsg")
int TRACING(sendmsg_exit_fe)
{
	return on_sendmsg_exit((int)FRET());
}

static __always_inline int on_tx_copy_enter(void *smc, __u64 len)
{
	struct stash s = {};

	count_hit(P_TX_COPY);
	if (!sock_wanted(smc, true))
		return 0;
	s.enter_ns = bpf_ktime_get_ns();
	s.a0 = (__u64)smc;
	s.a1 = len;
	s.v0 = rd_u64(conn_of(smc), off_conn_tx_curs_prep);
	stash_put(P_TX_COPY, &s);
	return 0;
}

SEC("kprobe/smc_tx_sendmsg")
int BPF_KPROBE(tx_copy_enter, void *smc, void *msg, __u64 len)
{
	return on_tx_copy_enter(smc, len);
}

SEC("fentry/smc_tx_sendmsg")
int TRACING(tx_copy_enter_fe)
{
	return on_tx_copy_enter((void *)FARG(0), FARG(2));
}

/* --payload N: the first bytes the send put into the send buffer. */
static __always_inline int emit_payload(const void *smc, __u64 prep_raw, long copied)
{
	const void *conn = conn_of(smc), *buf, *base;
	struct st_curs before;
	__u32 n, cap, ring;

	buf = rd_ptr(conn, off_conn_sndbuf_desc);
	if (!buf)
		return 0;
	base = rd_ptr(buf, off_buf_cpu_addr);
	ring = rd_u32(buf, off_buf_len);
	curs_from_raw(&before, prep_raw);
	if (!base || before.count >= ring)
		return 0;
	n = payload_bytes;
	if (n > copied)
		n = copied;
	cap = n;
	if (n > ring - before.count)	/* stop at the ring's end */
		n = ring - before.count;
	n &= 0x1ff;
	if (n > ST_PAYLOAD_MAX)
		n = ST_PAYLOAD_MAX;

	struct st_payload *ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + ST_PAYLOAD_MAX, 0);

	if (!ev) {
		count_lost();
		return 0;
	}
	__builtin_memset(ev, 0, sizeof(*ev) + ST_PAYLOAD_MAX);
	fill_hdr(&ev->hdr, ST_EV_PAYLOAD, sizeof(*ev) + ((n + 7) & ~7U));
	if (n < cap)
		ev->hdr.flags |= ST_F_TRUNCATED;
	ev->sock = sock_id(smc);
	ev->prep_before = before;
	ev->captured = n;
	ev->msg_len = copied;
	if (n)
		bpf_probe_read_kernel((char *)(ev + 1), n, AT(base, before.count));
	submit(ev);
	return 0;
}

static __always_inline int on_tx_copy_exit(long ret)
{
	struct stash s;
	const void *smc, *conn, *buf;

	if (!stash_take(P_TX_COPY, &s))
		return 0;
	smc = (const void *)s.a0;
	conn = conn_of(smc);
	{
		RESERVE(struct st_tx_copy, ev, ST_EV_TX_COPY);
		ev->sock = sock_id(smc);
		ev->enter_ns = s.enter_ns;
		curs_from_raw(&ev->prep_before, s.v0);
		rd_curs(&ev->prep_after, conn, off_conn_tx_curs_prep);
		buf = rd_ptr(conn, off_conn_sndbuf_desc);
		if (buf)
			ev->sndbuf_len = rd_u32(buf, off_buf_len);
		ev->sndbuf_space = rd_u32(conn, off_conn_sndbuf_space);
		ev->ret = ret;
		submit(ev);
	}
	if (payload_bytes && ret > 0)
		emit_payload(smc, s.v0, ret);
	return 0;
}

SEC("kretprobe/smc_tx_sendmsg")
int BPF_KRETPROBE(tx_copy_exit, long ret)
{
	return on_tx_copy_exit((int)ret);
}

SEC("fexit/smc_tx_sendmsg")
int TRACING(tx_copy_exit_fe)
{
	return on_tx_copy_exit((int)FRET());
}

static __always_inline int tx_start(__u32 probe, const void *conn, __u8 path)
{
	const void *smc = smc_of_conn(conn);

	count_hit(probe);
	if (!sock_wanted(smc, false))
		return 0;
	/*
	 * Only attempts with prepared, unsent bytes: the CQE and rx paths call
	 * these on every completion, mostly with nothing to send, and such empty
	 * attempts would double the sender's event rate for no stage.
	 */
	{
		/* both cursors in one copy (adjacent in struct smc_connection) */
		__u32 lo = min_u32(off_conn_tx_curs_prep, off_conn_tx_curs_sent);
		__u32 hi = max_u32(off_conn_tx_curs_prep, off_conn_tx_curs_sent) + 8;
		struct span sp = {};
		__u64 prep, sent;

		if (hi - lo <= SPAN_MAX) {
			span_read(&sp, conn, lo, hi - lo);
			prep = span_u64(&sp, off_conn_tx_curs_prep);
			sent = span_u64(&sp, off_conn_tx_curs_sent);
		} else {
			prep = rd_u64(conn, off_conn_tx_curs_prep);
			sent = rd_u64(conn, off_conn_tx_curs_sent);
		}
		if (prep == sent)
			return 0;
	}
	RESERVE(struct st_tx_start, ev, ST_EV_TX_START);
	ev->sock = sock_id(smc);
	ev->path = path;
	submit(ev);
	return 0;
}

SEC("kprobe/smc_tx_sndbuf_nonempty")
int BPF_KPROBE(tx_start_sendmsg, void *conn)
{
	return tx_start(P_TX_START_SENDMSG, conn, ST_TX_PATH_SENDMSG);
}

SEC("kprobe/smc_tx_pending")
int BPF_KPROBE(tx_start_pending, void *conn)
{
	return tx_start(P_TX_START_PENDING, conn, ST_TX_PATH_PENDING);
}

SEC("kprobe/smc_tx_work")
int BPF_KPROBE(tx_start_work, void *work)
{
	/* work is &conn->tx_work.work, the first member of the delayed_work */
	return tx_start(P_TX_START_WORK, (const char *)work - off_conn_tx_work, ST_TX_PATH_WORK);
}

SEC("fentry/smc_tx_sndbuf_nonempty")
int TRACING(tx_start_sendmsg_fe)
{
	return tx_start(P_TX_START_SENDMSG, (void *)FARG(0), ST_TX_PATH_SENDMSG);
}

SEC("fentry/smc_tx_pending")
int TRACING(tx_start_pending_fe)
{
	return tx_start(P_TX_START_PENDING, (void *)FARG(0), ST_TX_PATH_PENDING);
}

SEC("fentry/smc_tx_work")
int TRACING(tx_start_work_fe)
{
	return tx_start(P_TX_START_WORK, (const char *)FARG(0) - off_conn_tx_work, ST_TX_PATH_WORK);
}

static __always_inline int on_rdma_write_enter(void *conn)
{
	struct stash s = {};
	const void *smc = smc_of_conn(conn);

	count_hit(P_RDMA_WRITE);
	if (!sock_wanted(smc, false))
		return 0;
	s.enter_ns = bpf_ktime_get_ns();
	s.a0 = (__u64)conn;
	s.v0 = rd_u64(conn, off_conn_tx_prod);
	stash_put(P_RDMA_WRITE, &s);
	return 0;
}

SEC("kprobe/smc_tx_rdma_writes")
int BPF_KPROBE(rdma_write_enter, void *conn)
{
	return on_rdma_write_enter(conn);
}

SEC("fentry/smc_tx_rdma_writes")
int TRACING(rdma_write_enter_fe)
{
	return on_rdma_write_enter((void *)FARG(0));
}

static __always_inline int on_rdma_write_exit(long rc)
{
	struct stash s;
	const void *conn;

	if (!stash_take(P_RDMA_WRITE, &s))
		return 0;
	conn = (const void *)s.a0;
	RESERVE(struct st_rdma_write, ev, ST_EV_RDMA_WRITE);
	ev->sock = sock_id(smc_of_conn(conn));
	ev->enter_ns = s.enter_ns;
	curs_from_raw(&ev->prod_before, s.v0);
	rd_curs(&ev->prod_after, conn, off_conn_tx_prod);
	rd_curs(&ev->sent_after, conn, off_conn_tx_curs_sent);
	ev->peer_rmbe_size = rd_u32(conn, off_conn_peer_rmbe_size);
	ev->rc = (int)rc;
	submit(ev);
	return 0;
}

SEC("kretprobe/smc_tx_rdma_writes")
int BPF_KRETPROBE(rdma_write_exit, long rc)
{
	return on_rdma_write_exit((int)rc);
}

SEC("fexit/smc_tx_rdma_writes")
int TRACING(rdma_write_exit_fe)
{
	return on_rdma_write_exit((int)FRET());
}

/* Wire cursor (big-endian {reserved, wrap, count}) to host. */
static __always_inline void curs_from_wire(struct st_curs *c, const __u8 *w)
{
	c->wrap = ((__u16)w[2] << 8) | w[3];
	c->count = ((__u32)w[4] << 24) | ((__u32)w[5] << 16) | ((__u32)w[6] << 8) | w[7];
	c->_pad = 0;
}

/* The first 28 bytes of struct smc_cdc_msg (44 bytes, big-endian), as copied from the wire. */
static __always_inline void cdc_fill(struct st_cdc *ev, const __u8 *w)
{
	ev->seqno = ((__u16)w[2] << 8) | w[3];
	ev->token = ((__u32)w[4] << 24) | ((__u32)w[5] << 16) | ((__u32)w[6] << 8) | w[7];
	curs_from_wire(&ev->prod, &w[8]);
	curs_from_wire(&ev->cons, &w[16]);
	ev->prod_flags = w[24];
	ev->conn_state_flags = w[25];
}

static __always_inline void cdc_from_wire(struct st_cdc *ev, const void *wire)
{
	__u8 w[28] = {};

	bpf_probe_read_kernel(w, sizeof(w), wire);
	cdc_fill(ev, w);
}

static __always_inline int on_cdc_send_enter(void *conn, void *wr_buf)
{
	struct stash s = {};

	count_hit(P_CDC_SEND);
	if (!sock_wanted(smc_of_conn(conn), false))
		return 0;
	s.enter_ns = bpf_ktime_get_ns();
	s.a0 = (__u64)conn;
	s.a1 = (__u64)wr_buf;
	stash_put(P_CDC_SEND, &s);
	return 0;
}

SEC("kprobe/smc_cdc_msg_send")
int BPF_KPROBE(cdc_send_enter, void *conn, void *wr_buf)
{
	return on_cdc_send_enter(conn, wr_buf);
}

SEC("fentry/smc_cdc_msg_send")
int TRACING(cdc_send_enter_fe)
{
	return on_cdc_send_enter((void *)FARG(0), (void *)FARG(1));
}

static __always_inline int on_cdc_send_exit(long rc)
{
	struct stash s;

	if (!stash_take(P_CDC_SEND, &s))
		return 0;
	RESERVE(struct st_cdc, ev, ST_EV_CDC_SEND);
	ev->sock = sock_id(smc_of_conn((const void *)s.a0));
	cdc_from_wire(ev, (const void *)s.a1);
	ev->rc = (int)rc;
	submit(ev);
	return 0;
}

SEC("kretprobe/smc_cdc_msg_send")
int BPF_KRETPROBE(cdc_send_exit, long rc)
{
	return on_cdc_send_exit((int)rc);
}

SEC("fexit/smc_cdc_msg_send")
int TRACING(cdc_send_exit_fe)
{
	return on_cdc_send_exit((int)FRET());
}

/* SMC-D: the CDC is written from conn->local_tx_ctrl; read it there at return. */
static __always_inline int on_smcd_cdc_send_enter(void *conn)
{
	struct stash s = {};

	count_hit(P_SMCD_CDC_SEND);
	if (!sock_wanted(smc_of_conn(conn), false))
		return 0;
	s.enter_ns = bpf_ktime_get_ns();
	s.a0 = (__u64)conn;
	stash_put(P_SMCD_CDC_SEND, &s);
	return 0;
}

SEC("kprobe/smcd_cdc_msg_send")
int BPF_KPROBE(smcd_cdc_send_enter, void *conn)
{
	return on_smcd_cdc_send_enter(conn);
}

SEC("fentry/smcd_cdc_msg_send")
int TRACING(smcd_cdc_send_enter_fe)
{
	return on_smcd_cdc_send_enter((void *)FARG(0));
}

static __always_inline int on_smcd_cdc_send_exit(long rc)
{
	struct stash s;
	const void *conn;

	if (!stash_take(P_SMCD_CDC_SEND, &s))
		return 0;
	conn = (const void *)s.a0;
	RESERVE(struct st_cdc, ev, ST_EV_CDC_SEND);
	ev->sock = sock_id(smc_of_conn(conn));
	rd_curs(&ev->prod, conn, off_conn_tx_prod);
	rd_curs(&ev->cons, conn, off_conn_tx_cons);
	ev->prod_flags = rd_u8(conn, off_conn_tx_prod_flags);
	ev->conn_state_flags = rd_u8(conn, off_conn_tx_cs_flags);
	ev->rc = (int)rc;
	ev->cdc_flags = ST_CDC_F_SMCD;
	submit(ev);
	return 0;
}

SEC("kretprobe/smcd_cdc_msg_send")
int BPF_KRETPROBE(smcd_cdc_send_exit, long rc)
{
	return on_smcd_cdc_send_exit((int)rc);
}

SEC("fexit/smcd_cdc_msg_send")
int TRACING(smcd_cdc_send_exit_fe)
{
	return on_smcd_cdc_send_exit((int)FRET());
}

/* smc_cdc_tx_handler(pnd_snd, link, wc_status): pnd_snd is a struct smc_cdc_tx_pend. */
static __always_inline int on_cdc_tx_done(void *pend, __u32 wc_status)
{
	/* struct smc_cdc_tx_pend: conn, p_cursor and ctrl_seq in one copy */
	__u32 lo = min_u32(min_u32(off_pend_conn, off_pend_p_cursor), off_pend_ctrl_seq);
	__u32 hi = max_u32(max_u32(off_pend_conn + 8, off_pend_p_cursor + 8), off_pend_ctrl_seq + 2);
	struct span sp = {};
	const void *conn;
	__u64 prod;
	__u16 seq;

	count_hit(P_CDC_TX_DONE);
	if (hi - lo <= SPAN_MAX) {
		span_read(&sp, pend, lo, hi - lo);
		conn = (const void *)span_u64(&sp, off_pend_conn);
		prod = span_u64(&sp, off_pend_p_cursor);
		seq = span_u16(&sp, off_pend_ctrl_seq);
	} else {
		conn = rd_ptr(pend, off_pend_conn);
		prod = rd_u64(pend, off_pend_p_cursor);
		seq = rd_u16(pend, off_pend_ctrl_seq);
	}
	if (!conn || !sock_wanted(smc_of_conn(conn), false))
		return 0;
	RESERVE(struct st_cdc_tx_done, ev, ST_EV_CDC_TX_DONE);
	ev->sock = sock_id(smc_of_conn(conn));
	ev->seqno = seq + 1;
	ev->wc_status = wc_status;
	curs_from_raw(&ev->prod, prod);
	submit(ev);
	return 0;
}

SEC("kprobe/smc_cdc_tx_handler")
int BPF_KPROBE(cdc_tx_done, void *pend, void *link, __u32 wc_status)
{
	return on_cdc_tx_done(pend, wc_status);
}

SEC("fentry/smc_cdc_tx_handler")
int TRACING(cdc_tx_done_fe)
{
	return on_cdc_tx_done((void *)FARG(0), (__u32)FARG(2));
}

/*
 * The same record from the smctrace series' tracepoint (preferred where the
 * kernel has it, see probes.rs TP_PREFERRED): smc_cdc_tx_done(conn, seqno
 * (ctrl_seq + 1, as above), prod cursor, wc_status, lat_ns).
 */
SEC("raw_tp/smc_cdc_tx_done")
int BPF_PROG(cdc_tx_done_tp, const void *conn, __u16 seqno, const void *prod, int wc_status, __u64 lat_ns)
{
	count_hit(P_CDC_TX_DONE);
	if (!conn || !sock_wanted(smc_of_conn(conn), false))
		return 0;
	RESERVE(struct st_cdc_tx_done, ev, ST_EV_CDC_TX_DONE);
	ev->sock = sock_id(smc_of_conn(conn));
	ev->seqno = seqno;
	ev->wc_status = wc_status;
	rd_curs(&ev->prod, prod, 0);
	submit(ev);
	return 0;
}

/* ---- receiver ---- */

/* smc_cdc_rx_handler(wc, buf): one received CDC (SMC-R), before validation. */
static __always_inline int on_cdc_recv(void *wc, void *buf)
{
	const void *smc = 0;
	__u8 w[28] = {};
	__u32 token;
	__u64 *p;

	count_hit(P_CDC_RECV);
	/* one copy of the message serves the token lookup and the record */
	bpf_probe_read_kernel(w, sizeof(w), buf);
	/*
	 * Only filters need the socket here: without them the record keeps
	 * sock 0 and the analyzer names the socket by the token (the same
	 * CONN_INFO that fills this map tells it the token), which saves the
	 * LRU hash lookup, the dearest part of this hot program.
	 */
	if (filter_flags) {
		token = ((__u32)w[4] << 24) | ((__u32)w[5] << 16) | ((__u32)w[6] << 8) | w[7];
		p = bpf_map_lookup_elem(&tokens, &token);
		if (p)
			smc = (const void *)*p;
		if (!smc || !sock_wanted(smc, false))
			return 0;
	}
	RESERVE(struct st_cdc, ev, ST_EV_CDC_RECV);
	ev->sock = sock_id(smc);
	cdc_fill(ev, w);
	ev->rc = rd_u32(wc, off_ib_wc_status);
	submit(ev);
	return 0;
}

SEC("kprobe/smc_cdc_rx_handler")
int BPF_KPROBE(cdc_recv, void *wc, void *buf)
{
	return on_cdc_recv(wc, buf);
}

SEC("fentry/smc_cdc_rx_handler")
int TRACING(cdc_recv_fe)
{
	return on_cdc_recv((void *)FARG(0), (void *)FARG(1));
}

/*
 * smcd_cdc_rx_tsklet(t): t is &conn->rx_tsklet; the CDC sits at the start of
 * the DMB (struct smcd_cdc_msg, host order: prod at 8, cons at 16, each
 * {u16 wrap; u32 count; u8 prod_flags; u8 conn_state_flags} packed).
 */
static __always_inline int on_smcd_cdc_recv(void *t)
{
	const void *conn = (const char *)t - off_conn_rx_tsklet;
	const void *smc = smc_of_conn(conn), *buf, *dmb;
	__u8 w[24] = {};

	count_hit(P_SMCD_CDC_RECV);
	if (!sock_wanted(smc, false))
		return 0;
	buf = rd_ptr(conn, off_conn_rmb_desc);
	dmb = buf ? rd_ptr(buf, off_buf_cpu_addr) : 0;
	if (dmb)
		bpf_probe_read_kernel(w, sizeof(w), dmb);
	RESERVE(struct st_cdc, ev, ST_EV_CDC_RECV);
	ev->sock = sock_id(smc);
	ev->prod.wrap = w[8] | ((__u16)w[9] << 8);
	ev->prod.count = w[10] | ((__u32)w[11] << 8) | ((__u32)w[12] << 16) | ((__u32)w[13] << 24);
	ev->prod_flags = w[14];
	ev->conn_state_flags = w[15];
	ev->cons.wrap = w[16] | ((__u16)w[17] << 8);
	ev->cons.count = w[18] | ((__u32)w[19] << 8) | ((__u32)w[20] << 16) | ((__u32)w[21] << 24);
	ev->cdc_flags = ST_CDC_F_SMCD;
	submit(ev);
	return 0;
}

SEC("kprobe/smcd_cdc_rx_tsklet")
int BPF_KPROBE(smcd_cdc_recv, void *t)
{
	return on_smcd_cdc_recv(t);
}

SEC("fentry/smcd_cdc_rx_tsklet")
int TRACING(smcd_cdc_recv_fe)
{
	return on_smcd_cdc_recv((void *)FARG(0));
}

static __always_inline int on_rx_action_enter(void *smc)
{
	struct stash s = {};

	count_hit(P_RX_ACTION);
	if (!sock_wanted(smc, false))
		return 0;
	s.enter_ns = bpf_ktime_get_ns();
	s.a0 = (__u64)smc;
	s.v0 = rd_u64(conn_of(smc), off_conn_rx_prod);
	stash_put(P_RX_ACTION, &s);
	return 0;
}

SEC("kprobe/smc_cdc_msg_recv_action")
int BPF_KPROBE(rx_action_enter, void *smc)
{
	return on_rx_action_enter(smc);
}

SEC("fentry/smc_cdc_msg_recv_action")
int TRACING(rx_action_enter_fe)
{
	return on_rx_action_enter((void *)FARG(0));
}

static __always_inline int on_rx_action_exit(void)
{
	struct stash s;
	const void *smc, *conn, *buf;

	if (!stash_take(P_RX_ACTION, &s))
		return 0;
	smc = (const void *)s.a0;
	conn = conn_of(smc);
	RESERVE(struct st_rx_action, ev, ST_EV_RX_ACTION);
	ev->sock = sock_id(smc);
	ev->enter_ns = s.enter_ns;
	curs_from_raw(&ev->prod_before, s.v0);
	{
		/* conn->local_rx_ctrl: seqno, cursors and flags in one copy */
		__u32 lo = min_u32(min_u32(off_conn_rx_prod, off_conn_rx_cons),
				   min_u32(off_conn_rx_seqno, min_u32(off_conn_rx_prod_flags, off_conn_rx_cs_flags)));
		__u32 hi = max_u32(max_u32(off_conn_rx_prod + 8, off_conn_rx_cons + 8),
				   max_u32(off_conn_rx_seqno + 2, max_u32(off_conn_rx_prod_flags + 1, off_conn_rx_cs_flags + 1)));
		struct span sp = {};

		if (hi - lo <= SPAN_MAX) {
			span_read(&sp, conn, lo, hi - lo);
			curs_from_raw(&ev->prod_after, span_u64(&sp, off_conn_rx_prod));
			curs_from_raw(&ev->peer_cons, span_u64(&sp, off_conn_rx_cons));
			ev->seqno = span_u16(&sp, off_conn_rx_seqno);
			ev->prod_flags = span_u8(&sp, off_conn_rx_prod_flags);
			ev->conn_state_flags = span_u8(&sp, off_conn_rx_cs_flags);
		} else {
			rd_curs(&ev->prod_after, conn, off_conn_rx_prod);
			rd_curs(&ev->peer_cons, conn, off_conn_rx_cons);
			ev->seqno = rd_u16(conn, off_conn_rx_seqno);
			ev->prod_flags = rd_u8(conn, off_conn_rx_prod_flags);
			ev->conn_state_flags = rd_u8(conn, off_conn_rx_cs_flags);
		}
	}
	ev->bytes_to_rcv = rd_u32(conn, off_conn_bytes_to_rcv);
	buf = rd_ptr(conn, off_conn_rmb_desc);
	if (buf)
		ev->rmb_len = rd_u32(buf, off_buf_len);
	submit(ev);
	return 0;
}

SEC("kretprobe/smc_cdc_msg_recv_action")
int BPF_KRETPROBE(rx_action_exit)
{
	return on_rx_action_exit();
}

SEC("fexit/smc_cdc_msg_recv_action")
int TRACING(rx_action_exit_fe)
{
	return on_rx_action_exit();
}

static __always_inline int on_rx_wake(void *sk)
{
	count_hit(P_RX_WAKE);
	if (!sock_wanted(sk, false))
		return 0;
	RESERVE(struct st_rx_wake, ev, ST_EV_RX_WAKE);
	ev->sock = sock_id(sk);
	submit(ev);
	return 0;
}

SEC("kprobe/smc_rx_wake_up")
int BPF_KPROBE(rx_wake, void *sk)
{
	return on_rx_wake(sk);
}

SEC("fentry/smc_rx_wake_up")
int TRACING(rx_wake_fe)
{
	return on_rx_wake((void *)FARG(0));
}

/* smc_rx_recvmsg(smc, msg, pipe, len, flags) */
static __always_inline int on_recvmsg_enter(void *smc, __u64 len, int flags)
{
	struct stash s = {};

	count_hit(P_RECVMSG);
	if (!sock_wanted(smc, true))
		return 0;
	s.enter_ns = bpf_ktime_get_ns();
	s.a0 = (__u64)smc;
	s.a1 = len;
	s.a2 = (__u32)flags;
	s.v0 = rd_u64(conn_of(smc), off_conn_tx_cons);
	stash_put(P_RECVMSG, &s);
	return 0;
}

SEC("kprobe/smc_rx_recvmsg")
int BPF_KPROBE(recvmsg_enter, void *smc, void *msg, void *pipe, __u64 len, int flags)
{
	return on_recvmsg_enter(smc, len, flags);
}

SEC("fentry/smc_rx_recvmsg")
int TRACING(recvmsg_enter_fe)
{
	return on_recvmsg_enter((void *)FARG(0), FARG(3), (int)FARG(4));
}

static __always_inline int on_recvmsg_exit(long ret)
{
	struct stash s;
	const void *smc, *conn, *buf;

	if (!stash_take(P_RECVMSG, &s))
		return 0;
	smc = (const void *)s.a0;
	conn = conn_of(smc);
	RESERVE(struct st_recvmsg, ev, ST_EV_RECVMSG);
	ev->sock = sock_id(smc);
	ev->enter_ns = s.enter_ns;
	curs_from_raw(&ev->cons_before, s.v0);
	rd_curs(&ev->cons_after, conn, off_conn_tx_cons);
	ev->len = s.a1;
	ev->ret = ret;
	ev->flags = s.a2;
	buf = rd_ptr(conn, off_conn_rmb_desc);
	if (buf)
		ev->rmb_len = rd_u32(buf, off_buf_len);
	submit(ev);
	return 0;
}

SEC("kretprobe/smc_rx_recvmsg")
int BPF_KRETPROBE(recvmsg_exit, long ret)
{
	return on_recvmsg_exit((int)ret);
}

SEC("fexit/smc_rx_recvmsg")
int TRACING(recvmsg_exit_fe)
{
	return on_recvmsg_exit((int)FRET());
}
