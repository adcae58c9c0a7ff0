/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel member offsets read by both BPF programs, smc_record.bpf.c (the
 * recorder) and monitor.bpf.c (the `conns` monitor). Each is a read-only
 * global the loader overwrites with the offset it resolved from the running
 * kernel's BTF (recorder/src/offsets.rs holds the member path of every one;
 * kread.h says why it is not CO-RE). A member only one program reads is
 * declared in that program's .bpf.c.
 *
 * Definitions, not declarations: every .bpf.c is compiled on its own into
 * its own object, so each object gets its own copy, which is what the loader
 * writes. Include this header from a .bpf.c only.
 */
#ifndef SMCTRACE_OFFSETS_H
#define SMCTRACE_OFFSETS_H

#include <linux/types.h>

/* vmlinux members */
volatile const __u32 off_socket_sk = 0;
volatile const __u32 off_skc_family = 0;
volatile const __u32 off_skc_num = 0;
volatile const __u32 off_skc_dport = 0;
volatile const __u32 off_skc_rcv_saddr = 0;
volatile const __u32 off_skc_daddr = 0;
volatile const __u32 off_skc_v6_rcv_saddr = 0;
volatile const __u32 off_skc_v6_daddr = 0;
/* smc.ko members */
volatile const __u32 off_smc_clcsock = 0;
volatile const __u32 off_smc_conn = 0;
volatile const __u32 off_conn_lgr = 0;
volatile const __u32 off_conn_alert_token_local = 0;
volatile const __u32 off_conn_sndbuf_space = 0;
volatile const __u32 off_conn_rx_prod = 0;	/* local_rx_ctrl.prod */
volatile const __u32 off_conn_bytes_to_rcv = 0;
volatile const __u32 off_lgr_is_smcd = 0;
volatile const __u32 off_pend_conn = 0;
volatile const __u32 off_pend_ctrl_seq = 0;

#endif /* SMCTRACE_OFFSETS_H */
