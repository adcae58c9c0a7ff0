//! `smc-analyze export --pcapng OUT`: the recording as packets, so an
//! operator can open it in Wireshark next to a real capture. The recorder
//! never sees packet bytes (only the kernel's view of each CLC and CDC
//! message), so this module *synthesizes* frames that Wireshark's SMC
//! dissector (`packet-smc.c`) decodes, from the recorded values:
//!
//! - CLC messages (`ST_EV_CLC`): Ethernet/IPv4|IPv6/TCP on the real clcsock
//!   4-tuple, a CLC message of the recorded type, length and version with the
//!   fields the recording knows (QPN, RMBE alert token and size, DMB token,
//!   decline diagnosis); everything else is zero.
//! - SMC-R CDCs (`ST_EV_CDC_SEND` / `ST_EV_CDC_RECV`): RoCEv2 frames
//!   (Ethernet/IP/UDP 4791/BTH RC SEND ONLY/44-byte CDC/ICRC) with the real
//!   destination QP and the recorded seqno, token, cursors and flags.
//! - SMC-R RDMA writes: RoCEv2 RDMA WRITE ONLY with a RETH giving the RMBE
//!   offset and length, carrying the payload bytes only when the recording
//!   captured them (`smc-record --payload N`; a captured prefix is written
//!   as a cut-short frame).
//! - TCP SYN / SYN-ACK / ACK of each recorded client, with the SMC option.
//! - SMC-D CDCs and ISM writes: a documented encapsulation on the IEEE local
//!   experimental EtherType 0x88B5 (see docs/analyzer.md).
//!
//! One interface per recording and link (clcsock TCP, each SMC-R link, ISM),
//! nanosecond timestamps on the reference clock, and per packet an
//! `opt_comment` (connection, message, stage timings) and the `epb_flags`
//! direction. Blocks are written by the `pcap-file` crate. Packets are
//! collected and sorted by time before writing, so memory grows with the
//! number of CLC/CDC/write events (about 200 bytes each).
//!
//! Files: `frames.rs` builds the bytes of each frame; `writer.rs` walks the
//! recordings and writes the pcapng file ([`write()`]).

mod frames;
mod writer;

pub use frames::*;
pub use writer::*;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use smctrace_format::event::{self, EventRef};
use smctrace_format::Reader;

use crate::join::{pt, Analysis, Dir, Message, STAGES};
use crate::model::{Addr, ClcType, Mode, Side};

/// UDP destination port of RoCEv2.
pub const ROCEV2_PORT: u16 = 4791;
/// EtherType of the SMC-D encapsulation (IEEE 802 local experimental 1).
pub const SMCD_ETHERTYPE: u16 = 0x88B5;
/// Magic at the start of an SMC-D encapsulated frame.
pub const SMCD_MAGIC: &[u8; 4] = b"smcd";
/// BTH opcodes (RC).
const OP_SEND_ONLY: u8 = 0x04;
const OP_RDMA_WRITE_ONLY: u8 = 0x0A;
/// EBCDIC eyecatchers.
const EYE_SMCR: [u8; 4] = [0xE2, 0xD4, 0xC3, 0xD9];
const EYE_SMCD: [u8; 4] = [0xE2, 0xD4, 0xC3, 0xC4];

/// What was written.
#[derive(Debug, Default)]
pub struct ExportSummary {
    pub interfaces: usize,
    pub clc: u64,
    pub cdc: u64,
    pub writes: u64,
    pub smcd: u64,
    /// CLC receive events not written because the sender's frame was.
    pub clc_merged: u64,
    /// Events that could not be placed (no 4-tuple or no link known).
    pub skipped: u64,
}
