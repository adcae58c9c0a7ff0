//! The probe table: every hook smc-record knows, which BPF programs implement
//! it, which analysis stage it feeds and which kernel members it reads.
//!
//! One row per *probe* (a logical hook, possibly an entry + return program
//! pair). The row index is the probe id used for the per-probe hit counter in
//! the BPF program (`enum probe_id` in recorder-ebpf/smc_record.h; a test keeps
//! both in the same order). Attaching, and reporting why a probe is missing,
//! is `loader.rs`'s job; this file is only the declaration.

/// How a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    KProbe,
    KRetProbe,
    RawTp,
}

impl Attach {
    pub fn name(self) -> &'static str {
        match self {
            Attach::KProbe => "kprobe",
            Attach::KRetProbe => "kretprobe",
            Attach::RawTp => "raw_tp",
        }
    }
}

pub struct Probe {
    /// Stable name, used in the trailer's probe hits and in `smc-record probes`.
    pub name: &'static str,
    /// Kernel function or tracepoint.
    pub hook: &'static str,
    /// BPF programs (program name, how it attaches). All or none attach.
    pub programs: &'static [(&'static str, Attach)],
    /// The analysis stage this feeds (the analyzer's stage letters, see docs/recorder.md).
    pub stage: &'static str,
    /// What the analysis lacks without this probe.
    pub loses: &'static str,
    /// `off_*` globals (offsets.rs FIELDS) the programs read.
    pub needs: &'static [&'static str],
}

use Attach::*;

/// A tracepoint of the smctrace kernel series (docs/kernel.md) that replaces a
/// probe's kprobe where the kernel has it: a stable interface instead of a
/// static function's entry, and a cheaper hook. The program emits the same record.
pub struct TpAlternative {
    /// `Probe::name` it replaces.
    pub probe: &'static str,
    pub tracepoint: &'static str,
    /// raw_tp program in smc_record.bpf.c.
    pub program: &'static str,
}

/// Tracepoints preferred over kprobes. (The series' other tracepoints carry what
/// the recorder's kprobes read too, but with different timing or fewer fields;
/// only this one is a drop-in replacement so far.)
pub const TP_PREFERRED: &[TpAlternative] = &[TpAlternative {
    probe: "cdc_tx_done",
    tracepoint: "smc_cdc_tx_done",
    program: "cdc_tx_done_tp",
}];

/// The tracepoint to use instead of probe `name`'s kprobes on this kernel, if any.
pub fn preferred_tracepoint(
    name: &str,
    has_tracepoint: impl Fn(&str) -> bool,
) -> Option<&'static TpAlternative> {
    TP_PREFERRED
        .iter()
        .find(|t| t.probe == name && has_tracepoint(t.tracepoint))
}

const SOCK: &[&str] = &["off_socket_sk"];
const CONN_SMC: &[&str] = &["off_smc_conn"];
const TX_START: &[&str] = &[
    "off_smc_conn",
    "off_conn_tx_curs_prep",
    "off_conn_tx_curs_sent",
];

/// In `enum probe_id` order.
pub const PROBES: &[Probe] = &[
    Probe {
        name: "connect",
        hook: "smc_connect",
        programs: &[("connect_enter", KProbe)],
        stage: "lifecycle",
        loses: "client connect() start time and destination",
        needs: &["off_socket_sk", "off_skc_net", "off_net_ns_inum"],
    },
    Probe {
        name: "handshake_client",
        hook: "__smc_connect",
        programs: &[("hs_client_enter", KProbe), ("hs_client_exit", KRetProbe)],
        stage: "lifecycle",
        loses: "client connection identity (4-tuple, tokens, QPs): client-side messages cannot be named or paired",
        needs: CONN_INFO_NEEDS,
    },
    Probe {
        name: "handshake_server",
        hook: "smc_listen_work",
        programs: &[("hs_server_enter", KProbe), ("hs_server_exit", KRetProbe)],
        stage: "lifecycle",
        loses: "server connection identity (4-tuple, tokens, QPs): server-side messages cannot be named or paired",
        needs: CONN_INFO_NEEDS_SERVER,
    },
    Probe {
        name: "clc_proposal_tx",
        hook: "smc_clc_send_proposal",
        programs: &[("clc_proposal_enter", KProbe), ("clc_proposal_exit", KRetProbe)],
        stage: "handshake",
        loses: "CLC proposal send time",
        needs: &[],
    },
    Probe {
        name: "clc_accept_tx",
        hook: "smc_clc_send_accept",
        programs: &[("clc_accept_enter", KProbe), ("clc_accept_exit", KRetProbe)],
        stage: "handshake",
        loses: "CLC accept send time",
        needs: &[],
    },
    Probe {
        name: "clc_confirm_tx",
        hook: "smc_clc_send_confirm",
        programs: &[("clc_confirm_enter", KProbe), ("clc_confirm_exit", KRetProbe)],
        stage: "handshake",
        loses: "CLC confirm send time",
        needs: &[],
    },
    Probe {
        name: "clc_decline_tx",
        hook: "smc_clc_send_decline",
        programs: &[("clc_decline_enter", KProbe), ("clc_decline_exit", KRetProbe)],
        stage: "handshake",
        loses: "CLC decline sent (and its diagnosis)",
        needs: &[],
    },
    Probe {
        name: "clc_rx",
        hook: "smc_clc_wait_msg",
        programs: &[("clc_wait_enter", KProbe), ("clc_wait_exit", KRetProbe)],
        stage: "handshake",
        loses: "CLC messages received (type, version, decline diagnosis)",
        needs: &[],
    },
    Probe {
        name: "fallback",
        hook: "smc_switch_to_fallback",
        programs: &[("fallback", RawTp)],
        stage: "lifecycle",
        loses: "fallback to TCP and its reason code",
        needs: &["off_smc_peer_diagnosis"],
    },
    Probe {
        name: "close",
        hook: "smc_release",
        programs: &[("release_enter", KProbe)],
        stage: "lifecycle",
        loses: "connection close time",
        needs: &["off_socket_sk", "off_skc_state", "off_smc_conn", "off_conn_killed", "bit_conn_killed"],
    },
    Probe {
        name: "link_down",
        hook: "smcr_link_down",
        programs: &[("link_down", RawTp)],
        stage: "lifecycle",
        loses: "SMC-R link failures",
        needs: &["off_lnk_lgr", "off_lnk_link_id", "off_lnk_state", "off_lnk_ibname"],
    },
    Probe {
        name: "sendmsg",
        hook: "smc_sendmsg",
        programs: &[("sendmsg_enter", KProbe), ("sendmsg_exit", KRetProbe)],
        stage: "A user send",
        loses: "stage A (user send) and the socket lock wait before the copy",
        needs: SOCK,
    },
    Probe {
        name: "tx_copy",
        hook: "smc_tx_sendmsg",
        programs: &[("tx_copy_enter", KProbe), ("tx_copy_exit", KRetProbe)],
        stage: "B copy into sndbuf",
        loses: "stage B: the stream range of each send, so messages cannot be delimited on the sender",
        needs: &["off_smc_conn", "off_conn_tx_curs_prep", "off_conn_sndbuf_desc", "off_buf_len", "off_conn_sndbuf_space", "off_buf_cpu_addr"],
    },
    Probe {
        name: "tx_start_sendmsg",
        hook: "smc_tx_sndbuf_nonempty",
        programs: &[("tx_start_sendmsg", KProbe)],
        stage: "C tx start",
        loses: "stage C for sends transmitted from sendmsg",
        needs: TX_START,
    },
    Probe {
        name: "tx_start_pending",
        hook: "smc_tx_pending",
        programs: &[("tx_start_pending", KProbe)],
        stage: "C tx start",
        loses: "stage C for deferred (autocorked / CQE-driven) transmits",
        needs: TX_START,
    },
    Probe {
        name: "tx_start_work",
        hook: "smc_tx_work",
        programs: &[("tx_start_work", KProbe)],
        stage: "C tx start",
        loses: "stage C for transmits from the tx worker (no free WR slot)",
        needs: &["off_smc_conn", "off_conn_tx_work", "off_conn_tx_curs_prep", "off_conn_tx_curs_sent"],
    },
    Probe {
        name: "rdma_write",
        hook: "smc_tx_rdma_writes",
        programs: &[("rdma_write_enter", KProbe), ("rdma_write_exit", KRetProbe)],
        stage: "D RDMA write / ISM move",
        loses: "stage D: when the data was posted to the device",
        needs: &["off_smc_conn", "off_conn_tx_prod", "off_conn_tx_curs_sent", "off_conn_peer_rmbe_size"],
    },
    Probe {
        name: "cdc_send",
        hook: "smc_cdc_msg_send",
        programs: &[("cdc_send_enter", KProbe), ("cdc_send_exit", KRetProbe)],
        stage: "E CDC send",
        loses: "stage E on SMC-R: the CDC (seqno, cursors) that announces the data to the peer; no cross-host pairing",
        needs: CONN_SMC,
    },
    Probe {
        name: "smcd_cdc_send",
        hook: "smcd_cdc_msg_send",
        programs: &[("smcd_cdc_send_enter", KProbe), ("smcd_cdc_send_exit", KRetProbe)],
        stage: "E CDC send",
        loses: "stage E on SMC-D",
        needs: &["off_smc_conn", "off_conn_tx_prod", "off_conn_tx_cons", "off_conn_tx_prod_flags", "off_conn_tx_cs_flags"],
    },
    Probe {
        name: "cdc_tx_done",
        hook: "smc_cdc_tx_handler",
        programs: &[("cdc_tx_done", KProbe)],
        stage: "F send completion",
        loses: "stage F: the CDC send completion (peer HCA ack)",
        needs: &["off_smc_conn", "off_pend_conn", "off_pend_ctrl_seq", "off_pend_p_cursor"],
    },
    Probe {
        name: "cdc_recv",
        hook: "smc_cdc_rx_handler",
        programs: &[("cdc_recv", KProbe)],
        stage: "G CDC receive",
        loses: "stage G on SMC-R: arrival of the CDC at the receiver",
        needs: &["off_ib_wc_status"],
    },
    Probe {
        name: "smcd_cdc_recv",
        hook: "smcd_cdc_rx_tsklet",
        programs: &[("smcd_cdc_recv", KProbe)],
        stage: "G CDC receive",
        loses: "stage G on SMC-D",
        needs: &["off_smc_conn", "off_conn_rx_tsklet", "off_conn_rmb_desc", "off_buf_cpu_addr"],
    },
    Probe {
        name: "rx_action",
        hook: "smc_cdc_msg_recv_action",
        programs: &[("rx_action_enter", KProbe), ("rx_action_exit", KRetProbe)],
        stage: "H rx processing",
        loses: "stage H: when the receiver's cursors moved (data became readable)",
        needs: &[
            "off_smc_conn", "off_conn_rx_prod", "off_conn_rx_cons", "off_conn_rx_seqno", "off_conn_rx_prod_flags",
            "off_conn_rx_cs_flags", "off_conn_bytes_to_rcv", "off_conn_rmb_desc", "off_buf_len",
        ],
    },
    Probe {
        name: "rx_wake",
        hook: "smc_rx_wake_up",
        programs: &[("rx_wake", KProbe)],
        stage: "H reader wake-up",
        loses: "the reader wake-up time",
        needs: &[],
    },
    Probe {
        name: "recvmsg",
        hook: "smc_rx_recvmsg",
        programs: &[("recvmsg_enter", KProbe), ("recvmsg_exit", KRetProbe)],
        stage: "I user recv",
        loses: "stage I: when the application read the data (message end on the receiver)",
        needs: &["off_smc_conn", "off_conn_tx_cons", "off_conn_rmb_desc", "off_buf_len"],
    },
    Probe {
        name: "clc_build",
        hook: "smc_clc_send_confirm_accept",
        programs: &[("clc_build_enter", KProbe), ("clc_build_exit", KRetProbe)],
        stage: "handshake",
        loses: "length, version and path (R/D) of sent CLC accept/confirm messages (left 0)",
        needs: &[],
    },
];

const CONN_INFO_NEEDS: &[&str] = &[
    "off_socket_sk",
    "off_skc_family",
    "off_skc_num",
    "off_skc_dport",
    "off_skc_rcv_saddr",
    "off_skc_daddr",
    "off_skc_v6_rcv_saddr",
    "off_skc_v6_daddr",
    "off_skc_net",
    "off_net_ns_inum",
    "off_smc_clcsock",
    "off_smc_conn",
    "off_smc_use_fallback",
    "off_smc_fallback_rsn",
    "off_smc_peer_diagnosis",
    "off_conn_lgr",
    "off_conn_lnk",
    "off_conn_alert_token_local",
    "off_conn_tx_token",
    "off_conn_peer_rmbe_size",
    "off_conn_sndbuf_desc",
    "off_conn_rmb_desc",
    "off_buf_len",
    "off_buf_token",
    "off_conn_peer_token",
    "off_lgr_is_smcd",
    "off_lgr_smc_version",
    "off_lnk_roce_qp",
    "off_ib_qp_qp_num",
    "off_lnk_peer_qpn",
    "off_lnk_link_id",
    "off_lnk_ibname",
];

const CONN_INFO_NEEDS_SERVER: &[&str] = &[
    "off_socket_sk",
    "off_skc_family",
    "off_skc_num",
    "off_skc_dport",
    "off_skc_rcv_saddr",
    "off_skc_daddr",
    "off_skc_v6_rcv_saddr",
    "off_skc_v6_daddr",
    "off_skc_net",
    "off_net_ns_inum",
    "off_smc_clcsock",
    "off_smc_conn",
    "off_smc_use_fallback",
    "off_smc_fallback_rsn",
    "off_smc_peer_diagnosis",
    "off_conn_lgr",
    "off_conn_lnk",
    "off_conn_alert_token_local",
    "off_conn_tx_token",
    "off_conn_peer_rmbe_size",
    "off_conn_sndbuf_desc",
    "off_conn_rmb_desc",
    "off_buf_len",
    "off_buf_token",
    "off_conn_peer_token",
    "off_lgr_is_smcd",
    "off_lgr_smc_version",
    "off_lnk_roce_qp",
    "off_ib_qp_qp_num",
    "off_lnk_peer_qpn",
    "off_lnk_link_id",
    "off_lnk_ibname",
    "off_smc_listen_work",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offsets::FIELDS;

    const HEADER: &str = include_str!("../../recorder-ebpf/smc_record.h");
    const BPF_SRC: &str = include_str!("../../recorder-ebpf/smc_record.bpf.c");

    /// The table's order is the C `enum probe_id` order.
    #[test]
    fn probe_ids_match_header() {
        let body = HEADER
            .split("enum probe_id {")
            .nth(1)
            .unwrap()
            .split('}')
            .next()
            .unwrap();
        let ids: Vec<&str> = body
            .lines()
            .map(|l| l.trim().trim_end_matches(',').split(' ').next().unwrap())
            .filter(|s| s.starts_with("P_") && *s != "P_NR")
            .collect();
        assert_eq!(
            ids.len(),
            PROBES.len(),
            "probe count differs from enum probe_id"
        );
        for (id, p) in ids.iter().zip(PROBES) {
            // each entry program passes <its id> to a shared body, or its body
            // (`on_<program>`, shared with the fentry twin) uses count_hit(<its id>)
            let entry = p.programs[0].0;
            let needle = format!("{entry},");
            let at = BPF_SRC
                .find(&needle)
                .unwrap_or_else(|| panic!("program {entry} not in the BPF source"));
            let window = &BPF_SRC[at..(at + 600).min(BPF_SRC.len())];
            let body = format!("static __always_inline int on_{entry}(");
            let window = match BPF_SRC.find(&body) {
                Some(b) if !window.contains(id) => &BPF_SRC[b..(b + 600).min(BPF_SRC.len())],
                _ => window,
            };
            assert!(
                window.contains(id),
                "program {entry} (probe {}) does not use {id}",
                p.name
            );
        }
    }

    /// Every program and every needed global exists in the BPF source/FIELDS.
    #[test]
    fn programs_and_globals_exist() {
        let globals: Vec<&str> = FIELDS
            .iter()
            .flat_map(|f| std::iter::once(f.global).chain(f.bit_global))
            .collect();
        for p in PROBES {
            for (prog, how) in p.programs {
                assert!(
                    BPF_SRC.contains(&format!("({prog},"))
                        || BPF_SRC.contains(&format!("({prog})")),
                    "{prog}"
                );
                // every kprobe/kretprobe has its fentry/fexit twin on the same function
                let twin = crate::loader::fentry_twin(prog);
                let sec = match how {
                    KProbe => "fentry",
                    KRetProbe => "fexit",
                    RawTp => continue,
                };
                let decl = format!("SEC(\"{sec}/{}\")\nint TRACING({twin})", p.hook);
                assert!(
                    BPF_SRC.contains(&decl),
                    "{}: no `{decl}` in smc_record.bpf.c",
                    p.name
                );
            }
            for n in p.needs {
                assert!(
                    globals.contains(n),
                    "{}: {n} not in offsets::FIELDS",
                    p.name
                );
            }
        }
        let shared = include_str!("../../recorder-ebpf/offsets.h");
        assert!(BPF_SRC.contains("#include \"offsets.h\""));
        for g in &globals {
            let decl = format!("volatile const __u32 {g} = 0;");
            assert!(
                BPF_SRC.contains(&decl) || shared.contains(&decl),
                "{g} not a BPF global"
            );
        }
        // and every offset global of the program has its member path in FIELDS
        for text in [BPF_SRC, shared] {
            for decl in text.split("volatile const __u32 ").skip(1) {
                let g = decl.split(' ').next().unwrap();
                if g.starts_with("off_") || g.starts_with("bit_") {
                    assert!(globals.contains(&g), "{g} not in offsets::FIELDS");
                }
            }
        }
    }
}
