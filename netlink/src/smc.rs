//! The SMC generic netlink families: `SMC_GEN_NETLINK` (system info, link groups, links,
//! statistics, UEIDs) and `SMC_PNETID` (the PNET table).
//!
//! Constants mirror the kernel uapi `include/uapi/linux/smc.h` (values checked against
//! 6.1 and 6.12); the decoders are pure functions over attribute bytes so they are unit
//! tested against hand-built buffers, and tolerate attributes newer kernels add.

use serde::Serialize;

use crate::attrs::{self, find, Attr, Builder};
use crate::error::{Error, Result};
use crate::nl::{Genl, RawGenl};

pub const SMC_GENL_FAMILY_NAME: &str = "SMC_GEN_NETLINK";
pub const SMC_PNETID_FAMILY_NAME: &str = "SMC_PNETID";
const FAMILY_VERSION: u8 = 1;

// SMC_GEN_NETLINK commands.
pub const CMD_GET_SYS_INFO: u8 = 1;
pub const CMD_GET_LGR_SMCR: u8 = 2;
pub const CMD_GET_LINK_SMCR: u8 = 3;
pub const CMD_GET_STATS: u8 = 7;
pub const CMD_GET_FBACK_STATS: u8 = 8;
pub const CMD_DUMP_UEID: u8 = 9;
pub const CMD_ADD_UEID: u8 = 10;
pub const CMD_REMOVE_UEID: u8 = 11;
pub const CMD_FLUSH_UEID: u8 = 12;

// SMC_GEN_NETLINK top-level attributes (each a nest).
pub const GEN_SYS_INFO: u16 = 1;
pub const GEN_LGR_SMCR: u16 = 2;
pub const GEN_LINK_SMCR: u16 = 3;
pub const GEN_STATS: u16 = 7;
pub const GEN_FBACK_STATS: u16 = 8;

// SMC_GEN_SYS_INFO.
const SYS_VER: u16 = 1;
const SYS_REL: u16 = 2;
const SYS_IS_ISM_V2: u16 = 3;
const SYS_LOCAL_HOST: u16 = 4;
const SYS_SEID: u16 = 5;
const SYS_IS_SMCR_V2: u16 = 6;

// SMC_GEN_LGR_SMCR.
const LGR_R_ID: u16 = 1;
const LGR_R_ROLE: u16 = 2;
const LGR_R_TYPE: u16 = 3;
const LGR_R_PNETID: u16 = 4;
const LGR_R_VLAN_ID: u16 = 5;
const LGR_R_CONNS_NUM: u16 = 6;

// SMC_GEN_LINK_SMCR.
const LINK_ID: u16 = 1;
const LINK_IB_DEV: u16 = 2;
const LINK_IB_PORT: u16 = 3;
const LINK_GID: u16 = 4;
const LINK_PEER_GID: u16 = 5;
const LINK_CONN_CNT: u16 = 6;
const LINK_NET_DEV: u16 = 7; // u32 ifindex
const LINK_UID: u16 = 8;
const LINK_PEER_UID: u16 = 9;
const LINK_STATE: u16 = 10;

// SMC_GEN_FBACK_STATS.
const FBACK_TYPE: u16 = 1;
const FBACK_SRV_CNT: u16 = 2;
const FBACK_CLNT_CNT: u16 = 3;
const FBACK_RSN_CODE: u16 = 4;
const FBACK_RSN_CNT: u16 = 5;

// UEID table.
const EID_TABLE_ENTRY: u16 = 1;
/// Length of an EID; the kernel wants it blank-padded plus a NUL (33 bytes on the wire).
pub const SMC_MAX_EID_LEN: usize = 32;

// SMC_PNETID family.
const PNETID_GET: u8 = 1;
const PNETID_ADD: u8 = 2;
const PNETID_DEL: u8 = 3;
const PNETID_FLUSH: u8 = 4;
const PNETID_NAME: u16 = 1;
const PNETID_ETHNAME: u16 = 2;
const PNETID_IBNAME: u16 = 3;
const PNETID_IBPORT: u16 = 4;
/// Longest PNET ID the kernel accepts.
pub const SMC_MAX_PNETID_LEN: usize = 16;

fn decode_err(op: &'static str) -> impl Fn(String) -> Error {
    move |msg| Error::Decode { op, msg }
}

/// The nest of type `nest` in a reply, if present.
fn top_nest<'a>(msg: &'a RawGenl, nest: u16, op: &'static str) -> Result<Option<Vec<Attr<'a>>>> {
    let top = attrs::parse(&msg.attrs).map_err(decode_err(op))?;
    match find(&top, nest) {
        Some(a) => Ok(Some(a.nested().map_err(decode_err(op))?)),
        None => Ok(None),
    }
}

fn gen() -> Result<Genl> {
    Genl::open(SMC_GENL_FAMILY_NAME, FAMILY_VERSION)
}

fn pnet_family() -> Result<Genl> {
    Genl::open(SMC_PNETID_FAMILY_NAME, FAMILY_VERSION)
}

// ---------------------------------------------------------------- UEID

/// Validates and normalizes a user EID the way the kernel checks it: upper-cased, 1..=32
/// characters of `A-Z 0-9 . -`, returned blank-padded to 32 bytes plus a NUL.
pub fn encode_ueid(name: &str) -> Result<[u8; SMC_MAX_EID_LEN + 1]> {
    let up = name.trim().to_ascii_uppercase();
    if up.is_empty() || up.len() > SMC_MAX_EID_LEN {
        return Err(Error::InvalidArgument(format!(
            "UEID {name:?}: must be 1 to {SMC_MAX_EID_LEN} characters"
        )));
    }
    if let Some(c) = up
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '-'))
    {
        return Err(Error::InvalidArgument(format!(
            "UEID {name:?}: character {c:?} not allowed (only A-Z, 0-9, '.' and '-')"
        )));
    }
    let mut out = [b' '; SMC_MAX_EID_LEN + 1];
    out[..up.len()].copy_from_slice(up.as_bytes());
    out[SMC_MAX_EID_LEN] = 0;
    Ok(out)
}

fn ueid_attrs(name: &str) -> Result<Vec<u8>> {
    Ok(Builder::new()
        .bytes(EID_TABLE_ENTRY, &encode_ueid(name)?)
        .build())
}

/// Adds a user-defined EID (needed for SMC-Rv2 / SMC-Dv2; both peers need the same one).
pub fn add_ueid(name: &str) -> Result<()> {
    let op = "add UEID";
    let attrs = ueid_attrs(name)?;
    match gen()?.request(CMD_ADD_UEID, attrs, false, op)? {
        Ok(_) => Ok(()),
        Err(libc::EEXIST) => Err(Error::InvalidArgument(format!(
            "add UEID: {} already present",
            name.to_ascii_uppercase()
        ))),
        Err(libc::ERANGE) => Err(Error::InvalidArgument(
            "add UEID: table full (the kernel keeps at most 4)".into(),
        )),
        Err(libc::EINVAL) => Err(Error::InvalidArgument(format!(
            "add UEID: kernel rejected {name:?} as invalid"
        ))),
        Err(e) => Err(Error::from_errno(op, e)),
    }
}

/// Removes one user-defined EID.
pub fn del_ueid(name: &str) -> Result<()> {
    let op = "remove UEID";
    let attrs = ueid_attrs(name)?;
    match gen()?.request(CMD_REMOVE_UEID, attrs, false, op)? {
        Ok(_) => Ok(()),
        Err(libc::ENOENT) => Err(Error::InvalidArgument(format!(
            "remove UEID: {} not in the table",
            name.to_ascii_uppercase()
        ))),
        Err(e) => Err(Error::from_errno(op, e)),
    }
}

/// Lists the user-defined EIDs (trailing blanks removed).
pub fn list_ueids() -> Result<Vec<String>> {
    let op = "list UEIDs";
    let msgs = gen()?.call(CMD_DUMP_UEID, Vec::new(), true, op)?;
    let mut out = Vec::new();
    for m in &msgs {
        out.extend(decode_ueids(m).map_err(decode_err(op))?);
    }
    Ok(out)
}

/// UEID entries of one dump reply.
pub fn decode_ueids(m: &RawGenl) -> std::result::Result<Vec<String>, String> {
    Ok(attrs::parse(&m.attrs)?
        .iter()
        .filter(|a| a.kind == EID_TABLE_ENTRY)
        .map(|a| a.string().trim_end().to_string())
        .collect())
}

/// Removes every user-defined EID.
pub fn flush_ueids() -> Result<()> {
    gen()?
        .call(CMD_FLUSH_UEID, Vec::new(), false, "flush UEIDs")
        .map(|_| ())
}

// ---------------------------------------------------------------- PNET table

/// One PNET table entry as the kernel dumps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PnetEntry {
    pub pnetid: String,
    /// Network device, "n/a" when the entry names none.
    pub netdev: String,
    /// RDMA device, "n/a" when the entry names none.
    pub ibdev: String,
    /// RDMA port; meaningless (the kernel sends 255) when `ibdev` is "n/a".
    pub ibport: u8,
}

fn check_pnetid(pnetid: &str) -> Result<String> {
    let up = pnetid.to_ascii_uppercase();
    if up.is_empty()
        || up.len() > SMC_MAX_PNETID_LEN
        || !up.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(Error::InvalidArgument(format!(
            "PNET ID {pnetid:?}: must be 1 to {SMC_MAX_PNETID_LEN} letters or digits"
        )));
    }
    Ok(up)
}

fn pnet_add(op: &'static str, attrs: Vec<u8>) -> Result<()> {
    match pnet_family()?.request(PNETID_ADD, attrs, false, op)? {
        Ok(_) => Ok(()),
        Err(libc::EEXIST) => Err(Error::InvalidArgument(format!(
            "{op}: entry already exists"
        ))),
        Err(libc::EINVAL) => Err(Error::InvalidArgument(format!(
            "{op}: kernel rejected the entry (unknown device or port?)"
        ))),
        Err(e) => Err(Error::from_errno(op, e)),
    }
}

/// Ties network device `ifname` to PNET ID `pnetid`.
pub fn pnet_add_netdev(pnetid: &str, ifname: &str) -> Result<()> {
    let id = check_pnetid(pnetid)?;
    pnet_add(
        "add PNET netdev entry",
        Builder::new()
            .string(PNETID_NAME, &id)
            .string(PNETID_ETHNAME, ifname)
            .build(),
    )
}

/// Ties port `port` of RDMA device `ibdev` to PNET ID `pnetid`.
pub fn pnet_add_ib(pnetid: &str, ibdev: &str, port: u8) -> Result<()> {
    let id = check_pnetid(pnetid)?;
    if !(1..=2).contains(&port) {
        return Err(Error::InvalidArgument(format!(
            "IB port {port}: must be 1 or 2"
        )));
    }
    pnet_add(
        "add PNET ib entry",
        Builder::new()
            .string(PNETID_NAME, &id)
            .string(PNETID_IBNAME, ibdev)
            .u8(PNETID_IBPORT, port)
            .build(),
    )
}

/// Deletes every entry of PNET ID `pnetid`.
pub fn pnet_del(pnetid: &str) -> Result<()> {
    let id = check_pnetid(pnetid)?;
    pnet_family()?
        .call(
            PNETID_DEL,
            Builder::new().string(PNETID_NAME, &id).build(),
            false,
            "delete PNET ID",
        )
        .map(|_| ())
}

/// Empties the PNET table.
pub fn pnet_flush() -> Result<()> {
    pnet_family()?
        .call(PNETID_FLUSH, Vec::new(), false, "flush PNET table")
        .map(|_| ())
}

/// Lists the PNET table.
pub fn pnet_list() -> Result<Vec<PnetEntry>> {
    let op = "list PNET table";
    let msgs = pnet_family()?.call(PNETID_GET, Vec::new(), true, op)?;
    msgs.iter()
        .map(|m| decode_pnet(m).map_err(decode_err(op)))
        .collect()
}

pub fn decode_pnet(m: &RawGenl) -> std::result::Result<PnetEntry, String> {
    let a = attrs::parse(&m.attrs)?;
    Ok(PnetEntry {
        pnetid: find(&a, PNETID_NAME)
            .map(|x| x.string())
            .unwrap_or_default(),
        netdev: find(&a, PNETID_ETHNAME)
            .map(|x| x.string())
            .unwrap_or_default(),
        ibdev: find(&a, PNETID_IBNAME)
            .map(|x| x.string())
            .unwrap_or_default(),
        ibport: find(&a, PNETID_IBPORT).and_then(|x| x.u8()).unwrap_or(0),
    })
}

// ---------------------------------------------------------------- system info

/// `SMC_NETLINK_GET_SYS_INFO`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SysInfo {
    pub smc_version: u8,
    pub smc_release: u8,
    pub ism_v2_capable: bool,
    /// Absent on kernels that do not report it.
    pub smcr_v2_capable: Option<bool>,
    pub local_host: String,
    pub seid: String,
}

pub fn sys_info() -> Result<SysInfo> {
    let op = "get SMC system info";
    let msgs = gen()?.call(CMD_GET_SYS_INFO, Vec::new(), true, op)?;
    for m in &msgs {
        if let Some(a) = top_nest(m, GEN_SYS_INFO, op)? {
            return Ok(decode_sys_info(&a));
        }
    }
    Err(Error::Decode {
        op,
        msg: "no SMC_GEN_SYS_INFO in reply".into(),
    })
}

pub fn decode_sys_info(a: &[Attr<'_>]) -> SysInfo {
    SysInfo {
        smc_version: find(a, SYS_VER).and_then(|x| x.u8()).unwrap_or(0),
        smc_release: find(a, SYS_REL).and_then(|x| x.u8()).unwrap_or(0),
        ism_v2_capable: find(a, SYS_IS_ISM_V2).and_then(|x| x.u8()).unwrap_or(0) != 0,
        smcr_v2_capable: find(a, SYS_IS_SMCR_V2).and_then(|x| x.u8()).map(|v| v != 0),
        // The kernel sends the CLC host name and SEID blank-padded to their fixed length.
        local_host: find(a, SYS_LOCAL_HOST)
            .map(|x| x.string().trim_end().to_string())
            .unwrap_or_default(),
        seid: find(a, SYS_SEID)
            .map(|x| x.string().trim_end().to_string())
            .unwrap_or_default(),
    }
}

// ---------------------------------------------------------------- link groups and links

/// One SMC-R link group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinkGroup {
    pub id: u32,
    /// 0 client, 1 server (`enum smc_lgr_role`).
    pub role: u8,
    /// `enum smc_lgr_type`: 0 none, 1 single, 2 symmetric, 3 asymmetric peer, 4 asymmetric local.
    pub lgr_type: u8,
    pub pnetid: String,
    pub vlan_id: u8,
    pub conns: u32,
}

/// One SMC-R link of a link group. The QP numbers are not exposed by netlink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Link {
    pub lgr_id: u32,
    pub link_id: u8,
    pub ibdev: String,
    pub ibport: u8,
    pub gid: String,
    pub peer_gid: String,
    pub conns: u32,
    pub netdev_ifindex: u32,
    /// Name of `netdev_ifindex` in this network namespace ("" if it no longer exists).
    pub netdev: String,
    pub link_uid: u32,
    pub peer_link_uid: u32,
    /// `enum smc_link_state`: 0 unused, 1 inactive, 2 activating, 3 active.
    pub state: u32,
}

impl LinkGroup {
    pub fn role_name(&self) -> &'static str {
        match self.role {
            0 => "CLNT",
            1 => "SERV",
            _ => "?",
        }
    }
    pub fn type_name(&self) -> &'static str {
        match self.lgr_type {
            0 => "NONE",
            1 => "SINGLE",
            2 => "SYM",
            3 => "ASYMP",
            4 => "ASYML",
            _ => "?",
        }
    }
}

impl Link {
    pub fn state_name(&self) -> &'static str {
        match self.state {
            0 => "UNUSED",
            1 => "INACTIVE",
            2 => "ACTIVATING",
            3 => "ACTIVE",
            _ => "?",
        }
    }
}

pub fn decode_lgr(a: &[Attr<'_>]) -> LinkGroup {
    LinkGroup {
        id: find(a, LGR_R_ID).and_then(|x| x.u32()).unwrap_or(0),
        role: find(a, LGR_R_ROLE).and_then(|x| x.u8()).unwrap_or(0),
        lgr_type: find(a, LGR_R_TYPE).and_then(|x| x.u8()).unwrap_or(0),
        pnetid: find(a, LGR_R_PNETID)
            .map(|x| x.string())
            .unwrap_or_default(),
        vlan_id: find(a, LGR_R_VLAN_ID).and_then(|x| x.u8()).unwrap_or(0),
        conns: find(a, LGR_R_CONNS_NUM).and_then(|x| x.u32()).unwrap_or(0),
    }
}

pub fn decode_link(a: &[Attr<'_>], lgr_id: u32) -> Link {
    let ifindex = find(a, LINK_NET_DEV).and_then(|x| x.u32()).unwrap_or(0);
    Link {
        lgr_id,
        link_id: find(a, LINK_ID).and_then(|x| x.u8()).unwrap_or(0),
        ibdev: find(a, LINK_IB_DEV).map(|x| x.string()).unwrap_or_default(),
        ibport: find(a, LINK_IB_PORT).and_then(|x| x.u8()).unwrap_or(0),
        gid: find(a, LINK_GID).map(|x| x.string()).unwrap_or_default(),
        peer_gid: find(a, LINK_PEER_GID)
            .map(|x| x.string())
            .unwrap_or_default(),
        conns: find(a, LINK_CONN_CNT).and_then(|x| x.u32()).unwrap_or(0),
        netdev_ifindex: ifindex,
        netdev: ifname(ifindex),
        link_uid: find(a, LINK_UID).and_then(|x| x.u32()).unwrap_or(0),
        peer_link_uid: find(a, LINK_PEER_UID).and_then(|x| x.u32()).unwrap_or(0),
        state: find(a, LINK_STATE).and_then(|x| x.u32()).unwrap_or(0),
    }
}

fn ifname(ifindex: u32) -> String {
    if ifindex == 0 {
        return String::new();
    }
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as if_indextoname requires; it NUL-terminates on success.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return String::new();
    }
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Walks a `GET_LINK_SMCR` dump: the kernel sends each link group's message followed by
/// one message per usable link of that group, so links belong to the last group seen.
pub fn decode_lgr_dump(msgs: &[RawGenl], op: &'static str) -> Result<(Vec<LinkGroup>, Vec<Link>)> {
    let mut lgrs = Vec::new();
    let mut links = Vec::new();
    let mut cur = 0;
    for m in msgs {
        let top = attrs::parse(&m.attrs).map_err(decode_err(op))?;
        for t in &top {
            match t.kind {
                GEN_LGR_SMCR => {
                    let g = decode_lgr(&t.nested().map_err(decode_err(op))?);
                    cur = g.id;
                    lgrs.push(g);
                }
                GEN_LINK_SMCR => links.push(decode_link(&t.nested().map_err(decode_err(op))?, cur)),
                _ => {}
            }
        }
    }
    Ok((lgrs, links))
}

/// SMC-R link groups.
pub fn link_groups() -> Result<Vec<LinkGroup>> {
    let op = "list SMC-R link groups";
    let msgs = gen()?.call(CMD_GET_LGR_SMCR, Vec::new(), true, op)?;
    Ok(decode_lgr_dump(&msgs, op)?.0)
}

/// SMC-R link groups with their links.
pub fn links() -> Result<(Vec<LinkGroup>, Vec<Link>)> {
    let op = "list SMC-R links";
    let msgs = gen()?.call(CMD_GET_LINK_SMCR, Vec::new(), true, op)?;
    decode_lgr_dump(&msgs, op)
}

// ---------------------------------------------------------------- statistics

/// Flattened SMC statistics of this network namespace, in kernel order.
///
/// Names are dot-separated paths of the kernel's nesting (see `stat_name`): `smcr.tx_bytes`,
/// `smcd.rx_pload.64k`, `smcr.tx_rmb.buf_full_cnt`, `clnt_hs_err_cnt`. Attributes the
/// kernel adds later appear as `attr<N>` at their level instead of being dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub counters: Vec<(String, u64)>,
}

impl Stats {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// Buckets of a latency histogram (`SMC_LAT_HIST_BUCKETS`, patched kernels only).
pub const LAT_HIST_BUCKETS: usize = 24;

/// Names of the latency histogram buckets: `lt1us` counts samples below 1 us, `ge<N>us`
/// samples in [N, 2N) us; the last bucket (`ge4194304us`) is open-ended.
pub const LAT_BUCKET_NAMES: [&str; LAT_HIST_BUCKETS] = [
    "lt1us",
    "ge1us",
    "ge2us",
    "ge4us",
    "ge8us",
    "ge16us",
    "ge32us",
    "ge64us",
    "ge128us",
    "ge256us",
    "ge512us",
    "ge1024us",
    "ge2048us",
    "ge4096us",
    "ge8192us",
    "ge16384us",
    "ge32768us",
    "ge65536us",
    "ge131072us",
    "ge262144us",
    "ge524288us",
    "ge1048576us",
    "ge2097152us",
    "ge4194304us",
];

impl Stats {
    /// The per-netns latency histogram of one stage (`tech` "smcd" or "smcr", `stage` as
    /// [`crate::diag::lat_stage_name`]), from the counters `<tech>.lat.<stage>.<bucket>`.
    /// `None` when no latency sample of `tech` is reported at all (a stock kernel, or a
    /// patched one before the first sample); empty buckets, which the kernel omits, are 0.
    pub fn lat_histogram(&self, tech: &str, stage: &str) -> Option<[u64; LAT_HIST_BUCKETS]> {
        let prefix = format!("{tech}.lat.");
        if !self.counters.iter().any(|(n, _)| n.starts_with(&prefix)) {
            return None;
        }
        let mut h = [0u64; LAT_HIST_BUCKETS];
        for (i, name) in LAT_BUCKET_NAMES.iter().enumerate() {
            h[i] = self.get(&format!("{tech}.lat.{stage}.{name}")).unwrap_or(0);
        }
        Some(h)
    }
}

/// Level of the statistics nesting, selecting the name table.
#[derive(Clone, Copy)]
enum Level {
    Top,
    Tech,
    Pload,
    Rmb,
    /// `SMC_NLA_STATS_T_LAT_HIST`: one nest per latency stage.
    LatHist,
    /// One stage's histogram: attribute type 1 + bucket.
    LatBucket,
}

fn level_name(level: Level, kind: u16) -> Option<(&'static str, Option<Level>)> {
    use Level::*;
    Some(match (level, kind) {
        (Top, 1) => ("smcd", Some(Tech)),
        (Top, 2) => ("smcr", Some(Tech)),
        (Top, 3) => ("clnt_hs_err_cnt", None),
        (Top, 4) => ("srv_hs_err_cnt", None),
        (Tech, 1) => ("tx_rmbsize", Some(Pload)),
        (Tech, 2) => ("rx_rmbsize", Some(Pload)),
        (Tech, 3) => ("tx_pload", Some(Pload)),
        (Tech, 4) => ("rx_pload", Some(Pload)),
        (Tech, 5) => ("tx_rmb", Some(Rmb)),
        (Tech, 6) => ("rx_rmb", Some(Rmb)),
        (Tech, 7) => ("clnt_v1_succ_cnt", None),
        (Tech, 8) => ("clnt_v2_succ_cnt", None),
        (Tech, 9) => ("srv_v1_succ_cnt", None),
        (Tech, 10) => ("srv_v2_succ_cnt", None),
        (Tech, 11) => ("sendpage_cnt", None),
        (Tech, 12) => ("splice_cnt", None),
        (Tech, 13) => ("cork_cnt", None),
        (Tech, 14) => ("ndly_cnt", None),
        (Tech, 15) => ("urg_data_cnt", None),
        (Tech, 16) => ("rx_bytes", None),
        (Tech, 17) => ("tx_bytes", None),
        (Tech, 18) => ("rx_cnt", None),
        (Tech, 19) => ("tx_cnt", None),
        (Tech, 20) => ("rx_rmb_usage", None),
        (Tech, 21) => ("tx_rmb_usage", None),
        (Tech, 22) => ("lat", Some(LatHist)),
        (LatHist, 1) => ("cdc_tx_compl", Some(LatBucket)),
        (LatHist, 2) => ("rx_consume", Some(LatBucket)),
        (LatHist, 3) => ("tx_sndbuf_full", Some(LatBucket)),
        (LatHist, 4) => ("tx_peer_win", Some(LatBucket)),
        (LatBucket, k @ 1..=24) => (LAT_BUCKET_NAMES[usize::from(k) - 1], None),
        (Pload, 1) => ("8k", None),
        (Pload, 2) => ("16k", None),
        (Pload, 3) => ("32k", None),
        (Pload, 4) => ("64k", None),
        (Pload, 5) => ("128k", None),
        (Pload, 6) => ("256k", None),
        (Pload, 7) => ("512k", None),
        (Pload, 8) => ("1024k", None),
        (Pload, 9) => ("gt_1024k", None),
        (Rmb, 1) => ("buf_size_small_peer_cnt", None),
        (Rmb, 2) => ("buf_size_small_cnt", None),
        (Rmb, 3) => ("buf_full_peer_cnt", None),
        (Rmb, 4) => ("buf_full_cnt", None),
        (Rmb, 5) => ("reuse_cnt", None),
        (Rmb, 6) => ("alloc_cnt", None),
        (Rmb, 7) => ("dgrade_cnt", None),
        _ => return None,
    })
}

fn flatten(
    attrs: &[Attr<'_>],
    level: Level,
    prefix: &str,
    out: &mut Vec<(String, u64)>,
) -> std::result::Result<(), String> {
    for a in attrs {
        if a.kind == 0 {
            continue; // the *_PAD attribute that aligns 64-bit values
        }
        let (name, sub) = match level_name(level, a.kind) {
            Some((n, s)) => (n.to_string(), s),
            None => (format!("attr{}", a.kind), None),
        };
        // The latency nest exists only with smctrace's net/smc series; should a kernel ever
        // send another, non-nested attribute 22 at that level, keep it as `attr22`.
        let (full, sub) = match sub {
            Some(Level::LatHist) if !a.is_nest => (format!("attr{}", a.kind), None),
            _ => (name, sub),
        };
        let full = if prefix.is_empty() {
            full
        } else {
            format!("{prefix}.{full}")
        };
        match sub {
            Some(l) => flatten(&a.nested()?, l, &full, out)?,
            None => {
                if let Some(v) = a.uint() {
                    out.push((full, v));
                }
            }
        }
    }
    Ok(())
}

/// Decodes the `SMC_GEN_STATS` nest.
pub fn decode_stats(nest: &[Attr<'_>]) -> std::result::Result<Stats, String> {
    let mut counters = Vec::new();
    flatten(nest, Level::Top, "", &mut counters)?;
    Ok(Stats { counters })
}

pub fn stats() -> Result<Stats> {
    let op = "get SMC statistics";
    let msgs = gen()?.call(CMD_GET_STATS, Vec::new(), true, op)?;
    let mut out = Stats::default();
    for m in &msgs {
        if let Some(n) = top_nest(m, GEN_STATS, op)? {
            out.counters
                .extend(decode_stats(&n).map_err(decode_err(op))?.counters);
        }
    }
    Ok(out)
}

/// One fallback reason counter; the kernel keeps up to 30 per side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Fallback {
    pub code: u32,
    pub count: u64,
    pub server: bool,
}

/// Fallback statistics: per-reason counts plus the totals per side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FallbackStats {
    pub server_total: u64,
    pub client_total: u64,
    pub reasons: Vec<Fallback>,
}

pub fn decode_fallbacks(msgs: &[RawGenl], op: &'static str) -> Result<FallbackStats> {
    let mut out = FallbackStats::default();
    for m in msgs {
        let Some(a) = top_nest(m, GEN_FBACK_STATS, op)? else {
            continue;
        };
        if let Some(v) = find(&a, FBACK_SRV_CNT).and_then(|x| x.u64()) {
            out.server_total = v;
        }
        if let Some(v) = find(&a, FBACK_CLNT_CNT).and_then(|x| x.u64()) {
            out.client_total = v;
        }
        if let Some(code) = find(&a, FBACK_RSN_CODE).and_then(|x| x.u32()) {
            out.reasons.push(Fallback {
                code,
                count: find(&a, FBACK_RSN_CNT).and_then(|x| x.uint()).unwrap_or(0),
                server: find(&a, FBACK_TYPE).and_then(|x| x.u8()).unwrap_or(0) != 0,
            });
        }
    }
    Ok(out)
}

pub fn fallback_stats() -> Result<FallbackStats> {
    let op = "get SMC fallback statistics";
    let msgs = gen()?.call(CMD_GET_FBACK_STATS, Vec::new(), true, op)?;
    decode_fallbacks(&msgs, op)
}

/// Name of an SMC decline/fallback reason code (`SMC_CLC_DECL_*`), if known.
pub fn fallback_reason_name(code: u32) -> &'static str {
    match code {
        0x01010000 => "MEM",
        0x02010000 => "TIMEOUT_CL",
        0x02020000 => "TIMEOUT_AL",
        0x03000000 => "CNFERR",
        0x03010000 => "PEERNOSMC",
        0x03020000 => "IPSEC",
        0x03030000 => "NOSMCDEV",
        0x03030001 => "NOSMCDDEV",
        0x03030002 => "NOSMCRDEV",
        0x03030003 => "NOISM2SUPP",
        0x03030004 => "NOV2EXT",
        0x03030005 => "NOV2DEXT",
        0x03030006 => "NOSEID",
        0x03030007 => "NOSMCD2DEV",
        0x03030008 => "NOUEID",
        0x03030009 => "RELEASEERR",
        0x0303000a => "MAXCONNERR",
        0x0303000b => "MAXLINKERR",
        0x03040000 => "MODEUNSUPP",
        0x03050000 => "RMBE_EC",
        0x03060000 => "OPTUNSUPP",
        0x03070000 => "DIFFPREFIX",
        0x03080000 => "GETVLANERR",
        0x03090000 => "ISMVLANERR",
        0x030a0000 => "NOACTLINK",
        0x030b0000 => "NOSRVLINK",
        0x030c0000 => "VERSMISMAT",
        0x030d0000 => "MAX_DMB",
        0x030e0000 => "NOROUTE",
        0x030f0000 => "NOINDIRECT",
        0x04000000 => "SYNCERR",
        0x05000000 => "PEERDECL",
        0x09990000 => "INTERR",
        0x09990001 => "ERR_RTOK",
        0x09990002 => "ERR_RDYLNK",
        0x09990003 => "ERR_REGBUF",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(cmd: u8, attrs: Vec<u8>) -> RawGenl {
        RawGenl {
            cmd,
            version: 1,
            attrs,
        }
    }

    #[test]
    fn ueid_is_uppercased_blank_padded_and_nul_terminated() {
        let e = encode_ueid("smc-lab.1").unwrap();
        assert_eq!(e.len(), 33);
        assert_eq!(&e[..9], b"SMC-LAB.1");
        assert!(e[9..32].iter().all(|&c| c == b' '));
        assert_eq!(e[32], 0);
        assert!(encode_ueid("").is_err());
        assert!(encode_ueid("A_B").is_err());
        assert!(encode_ueid(&"A".repeat(33)).is_err());
        assert!(encode_ueid(&"A".repeat(32)).is_ok());
        // The request carries exactly one 33-byte SMC_NLA_EID_TABLE_ENTRY.
        let a = ueid_attrs("x").unwrap();
        let p = attrs::parse(&a).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, EID_TABLE_ENTRY);
        assert_eq!(p[0].value.len(), 33);
    }

    #[test]
    fn ueid_dump_entries_are_trimmed() {
        let m = msg(
            CMD_DUMP_UEID,
            Builder::new()
                .bytes(EID_TABLE_ENTRY, &encode_ueid("SMCLAB").unwrap())
                .build(),
        );
        assert_eq!(decode_ueids(&m).unwrap(), vec!["SMCLAB".to_string()]);
    }

    #[test]
    fn pnet_request_and_dump() {
        assert!(check_pnetid("net-1").is_err());
        assert_eq!(check_pnetid("net1").unwrap(), "NET1");
        let m = msg(
            PNETID_GET,
            Builder::new()
                .string(PNETID_NAME, "NET1")
                .string(PNETID_ETHNAME, "eth0")
                .string(PNETID_IBNAME, "rxe0")
                .u8(PNETID_IBPORT, 1)
                .build(),
        );
        assert_eq!(
            decode_pnet(&m).unwrap(),
            PnetEntry {
                pnetid: "NET1".into(),
                netdev: "eth0".into(),
                ibdev: "rxe0".into(),
                ibport: 1
            }
        );
    }

    #[test]
    fn stats_are_flattened_with_documented_names() {
        let pload = Builder::new().u64(0, 0).u64(1, 5).u64(9, 2).build();
        let rmb = Builder::new().u64(4, 3).u64(6, 1).build();
        let smcr = Builder::new()
            .nested(3, pload)
            .nested(5, rmb)
            .u64(8, 11)
            .u64(17, 123456)
            .u64(16, 654321)
            .u64(42, 9) // an attribute a future kernel adds
            .build();
        let smcd = Builder::new().u64(19, 0).build();
        let nest = Builder::new()
            .nested(1, smcd)
            .nested(2, smcr)
            .u64(3, 4)
            .u64(4, 0)
            .build();
        let m = msg(
            CMD_GET_STATS,
            Builder::new().nested(GEN_STATS, nest).build(),
        );
        let a = top_nest(&m, GEN_STATS, "t").unwrap().unwrap();
        let s = decode_stats(&a).unwrap();
        assert_eq!(s.get("smcd.tx_cnt"), Some(0));
        assert_eq!(s.get("smcr.tx_pload.8k"), Some(5));
        assert_eq!(s.get("smcr.tx_pload.gt_1024k"), Some(2));
        assert_eq!(s.get("smcr.tx_rmb.buf_full_cnt"), Some(3));
        assert_eq!(s.get("smcr.tx_rmb.alloc_cnt"), Some(1));
        assert_eq!(s.get("smcr.clnt_v2_succ_cnt"), Some(11));
        assert_eq!(s.get("smcr.tx_bytes"), Some(123456));
        assert_eq!(s.get("smcr.rx_bytes"), Some(654321));
        assert_eq!(s.get("smcr.attr42"), Some(9));
        assert_eq!(s.get("clnt_hs_err_cnt"), Some(4));
        assert_eq!(s.get("srv_hs_err_cnt"), Some(0));
        assert!(
            s.counters.iter().all(|(n, _)| !n.contains("attr0")),
            "pad attributes must be skipped"
        );
    }

    #[test]
    fn latency_histograms_are_flattened_and_collected() {
        // rx_consume: 4 samples in [1, 2) ms, 1 sample >= 4.19 s; tx_sndbuf_full: empty nest
        let rx = Builder::new().u64(0, 0).u64(1 + 11, 4).u64(24, 1).build();
        let lat = Builder::new().nested(2, rx).nested(3, Vec::new()).build();
        let smcd = Builder::new().u64(19, 7).nested(22, lat).build();
        let nest = Builder::new()
            .nested(1, smcd)
            .nested(2, Builder::new().u64(19, 0).build())
            .build();
        let m = msg(
            CMD_GET_STATS,
            Builder::new().nested(GEN_STATS, nest).build(),
        );
        let a = top_nest(&m, GEN_STATS, "t").unwrap().unwrap();
        let s = decode_stats(&a).unwrap();
        assert_eq!(s.get("smcd.lat.rx_consume.ge1024us"), Some(4));
        assert_eq!(s.get("smcd.lat.rx_consume.ge4194304us"), Some(1));
        let h = s.lat_histogram("smcd", "rx_consume").unwrap();
        assert_eq!(h.iter().sum::<u64>(), 5);
        assert_eq!((h[11], h[23], h[0]), (4, 1, 0));
        assert_eq!(
            s.lat_histogram("smcd", "cdc_tx_compl"),
            Some([0; LAT_HIST_BUCKETS])
        );
        // a stock kernel sends no lat nest at all
        assert_eq!(s.lat_histogram("smcr", "rx_consume"), None);
    }

    #[test]
    fn a_plain_attribute_22_is_not_taken_for_the_latency_nest() {
        let smcr = Builder::new().u64(22, 77).u64(19, 1).build();
        let nest = Builder::new().nested(2, smcr).build();
        let m = msg(
            CMD_GET_STATS,
            Builder::new().nested(GEN_STATS, nest).build(),
        );
        let a = top_nest(&m, GEN_STATS, "t").unwrap().unwrap();
        let s = decode_stats(&a).unwrap();
        assert_eq!(s.get("smcr.attr22"), Some(77));
        assert_eq!(s.get("smcr.tx_cnt"), Some(1));
        assert_eq!(s.lat_histogram("smcr", "rx_consume"), None);
    }

    #[test]
    fn fallback_dump_collects_reasons_and_totals() {
        let first = Builder::new()
            .u8(FBACK_TYPE, 1)
            .u64(FBACK_SRV_CNT, 3)
            .u64(FBACK_CLNT_CNT, 1)
            .u32(FBACK_RSN_CODE, 0x0303_0008)
            .bytes(FBACK_RSN_CNT, &3u16.to_ne_bytes())
            .build();
        let second = Builder::new()
            .u8(FBACK_TYPE, 0)
            .u32(FBACK_RSN_CODE, 0x0500_0000)
            .bytes(FBACK_RSN_CNT, &1u16.to_ne_bytes())
            .build();
        let msgs = vec![
            msg(
                CMD_GET_FBACK_STATS,
                Builder::new().nested(GEN_FBACK_STATS, first).build(),
            ),
            msg(
                CMD_GET_FBACK_STATS,
                Builder::new().nested(GEN_FBACK_STATS, second).build(),
            ),
        ];
        let f = decode_fallbacks(&msgs, "t").unwrap();
        assert_eq!(f.server_total, 3);
        assert_eq!(f.client_total, 1);
        assert_eq!(
            f.reasons,
            vec![
                Fallback {
                    code: 0x0303_0008,
                    count: 3,
                    server: true
                },
                Fallback {
                    code: 0x0500_0000,
                    count: 1,
                    server: false
                }
            ]
        );
        assert_eq!(fallback_reason_name(0x0303_0008), "NOUEID");
    }

    #[test]
    fn link_dump_assigns_links_to_the_preceding_group() {
        let lgr = |id: u32| {
            msg(
                CMD_GET_LINK_SMCR,
                Builder::new()
                    .nested(
                        GEN_LGR_SMCR,
                        Builder::new()
                            .u32(LGR_R_ID, id)
                            .u32(LGR_R_CONNS_NUM, 2)
                            .u8(LGR_R_ROLE, 1)
                            .u8(LGR_R_TYPE, 1)
                            .u8(LGR_R_VLAN_ID, 0)
                            .string(LGR_R_PNETID, "")
                            .build(),
                    )
                    .build(),
            )
        };
        let link = |lid: u8| {
            msg(
                CMD_GET_LINK_SMCR,
                Builder::new()
                    .nested(
                        GEN_LINK_SMCR,
                        Builder::new()
                            .u8(LINK_ID, lid)
                            .u32(LINK_STATE, 3)
                            .u32(LINK_CONN_CNT, 2)
                            .u8(LINK_IB_PORT, 1)
                            .u32(LINK_NET_DEV, 0)
                            .string(LINK_IB_DEV, "rxe0")
                            .u32(LINK_UID, 0xaabbccdd)
                            .u32(LINK_PEER_UID, 0x11223344)
                            .string(LINK_GID, "fe80:0000")
                            .string(LINK_PEER_GID, "fe80:0001")
                            .build(),
                    )
                    .build(),
            )
        };
        let (g, l) =
            decode_lgr_dump(&[lgr(0x100), link(1), lgr(0x200), link(7), link(8)], "t").unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].id, 0x100);
        assert_eq!(g[0].role_name(), "SERV");
        assert_eq!(l.len(), 3);
        assert_eq!((l[0].lgr_id, l[0].link_id), (0x100, 1));
        assert_eq!((l[2].lgr_id, l[2].link_id), (0x200, 8));
        assert_eq!(l[1].ibdev, "rxe0");
        assert_eq!(l[1].state_name(), "ACTIVE");
        assert_eq!(l[1].peer_gid, "fe80:0001");
        assert_eq!(l[1].link_uid, 0xaabbccdd);
    }

    #[test]
    fn sys_info_decodes_optional_fields() {
        let n = Builder::new()
            .u8(SYS_VER, 2)
            .u8(SYS_REL, 1)
            .u8(SYS_IS_ISM_V2, 0)
            .string(SYS_LOCAL_HOST, "guest-a                         ")
            .build();
        let m = msg(
            CMD_GET_SYS_INFO,
            Builder::new().nested(GEN_SYS_INFO, n).build(),
        );
        let i = decode_sys_info(&top_nest(&m, GEN_SYS_INFO, "t").unwrap().unwrap());
        assert_eq!(i.smc_version, 2);
        assert_eq!(i.smcr_v2_capable, None);
        assert_eq!(i.local_host, "guest-a");
    }
}
