//! Netlink transport: one request, then every reply message up to the ACK or DONE.
//!
//! The `netlink-sys` socket and the `netlink-packet-*` framing do the wire work; this module
//! adds what the SMC families need on top: generic netlink family lookup with a clear
//! "module not loaded" error, a raw payload type so the SMC attribute sets (which no crate
//! models) can be decoded by `attrs`, and errno mapping per operation.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering};

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, ParseableParametrized, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{protocols, Socket, SocketAddr};

use crate::error::{Error, Result};

/// A generic netlink message of one of the SMC families: command plus raw attribute bytes.
///
/// The family id is resolved at run time and set on the `GenlMessage`, so `family_name`
/// is never used for lookup here (we resolve with `resolve_family` to get our own error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawGenl {
    pub cmd: u8,
    pub version: u8,
    pub attrs: Vec<u8>,
}

impl GenlFamily for RawGenl {
    fn family_name() -> &'static str {
        "SMC_GEN_NETLINK"
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        self.version
    }
}

impl Emitable for RawGenl {
    fn buffer_len(&self) -> usize {
        self.attrs.len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        buffer[..self.attrs.len()].copy_from_slice(&self.attrs);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for RawGenl {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> std::result::Result<Self, DecodeError> {
        Ok(RawGenl {
            cmd: header.cmd,
            version: header.version,
            attrs: buf.to_vec(),
        })
    }
}

/// A classic (non-generic) netlink message body, e.g. a sock_diag request or reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMsg {
    pub msg_type: u16,
    pub body: Vec<u8>,
}

impl NetlinkSerializable for RawMsg {
    fn message_type(&self) -> u16 {
        self.msg_type
    }
    fn buffer_len(&self) -> usize {
        self.body.len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        buffer[..self.body.len()].copy_from_slice(&self.body);
    }
}

impl NetlinkDeserializable for RawMsg {
    type Error = DecodeError;
    fn deserialize(
        header: &NetlinkHeader,
        payload: &[u8],
    ) -> std::result::Result<Self, DecodeError> {
        Ok(RawMsg {
            msg_type: header.message_type,
            body: payload.to_vec(),
        })
    }
}

impl From<RawMsg> for NetlinkPayload<RawMsg> {
    fn from(m: RawMsg) -> Self {
        NetlinkPayload::InnerMessage(m)
    }
}

static SEQ: AtomicU32 = AtomicU32::new(1);

/// An open netlink socket of one protocol (NETLINK_GENERIC or NETLINK_SOCK_DIAG).
pub struct Conn {
    sock: Socket,
}

impl Conn {
    pub fn open(protocol: isize, op: &'static str) -> Result<Conn> {
        let sock_err = |err| Error::Socket { op, err };
        let mut sock = Socket::new(protocol).map_err(sock_err)?;
        sock.bind_auto().map_err(sock_err)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(sock_err)?;
        Ok(Conn { sock })
    }

    pub fn generic(op: &'static str) -> Result<Conn> {
        Conn::open(protocols::NETLINK_GENERIC, op)
    }

    pub fn sock_diag(op: &'static str) -> Result<Conn> {
        Conn::open(protocols::NETLINK_SOCK_DIAG, op)
    }

    /// Sends `msg` and collects the inner replies. With `dump`, until NLMSG_DONE; otherwise
    /// the request asks for an ACK and we read until it arrives. A kernel error code in
    /// either case becomes an `Err` (errno in `Err(errno)` of the inner result, so callers
    /// can give ENOENT a meaning of their own).
    pub fn transact<I>(
        &self,
        mut msg: NetlinkMessage<I>,
        dump: bool,
        op: &'static str,
    ) -> Result<std::result::Result<Vec<I>, i32>>
    where
        I: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        msg.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        msg.header.sequence_number = seq;
        msg.finalize();
        let mut tx = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut tx);
        self.sock
            .send(&tx, 0)
            .map_err(|err| Error::Socket { op, err })?;

        let mut out = Vec::new();
        loop {
            let (buf, _) = self
                .sock
                .recv_from_full()
                .map_err(|err| Error::Socket { op, err })?;
            if buf.is_empty() {
                return Err(Error::Decode {
                    op,
                    msg: "empty datagram".into(),
                });
            }
            let mut off = 0;
            while off < buf.len() {
                let nb = NetlinkBuffer::new_checked(&buf[off..]).map_err(|e| Error::Decode {
                    op,
                    msg: e.to_string(),
                })?;
                let len = nb.length() as usize;
                if len == 0 {
                    return Err(Error::Decode {
                        op,
                        msg: "zero-length netlink message".into(),
                    });
                }
                let frame = &buf[off..off + len];
                off += (len + 3) & !3;
                let m = NetlinkMessage::<I>::deserialize(frame).map_err(|e| Error::Decode {
                    op,
                    msg: e.to_string(),
                })?;
                if m.header.sequence_number != seq {
                    continue; // a stale reply to an earlier request on this socket
                }
                match m.payload {
                    NetlinkPayload::Done(d) => {
                        if d.code < 0 {
                            return Ok(Err(-d.code));
                        }
                        return Ok(Ok(out));
                    }
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(Ok(out)),
                        Some(c) => return Ok(Err(-c.get())),
                    },
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    _ => {}
                }
            }
        }
    }
}

/// Looks up the id of generic netlink family `name`; ENOENT means it is not registered.
pub fn resolve_family(conn: &Conn, name: &'static str) -> Result<u16> {
    let req = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())],
    });
    let op = "resolve generic netlink family";
    let mut nl = NetlinkMessage::from(req);
    nl.header.flags = NLM_F_REQUEST;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    nl.header.sequence_number = seq;
    nl.finalize();
    let mut tx = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut tx);
    conn.sock
        .send(&tx, 0)
        .map_err(|err| Error::Socket { op, err })?;
    loop {
        let (buf, _) = conn
            .sock
            .recv_from_full()
            .map_err(|err| Error::Socket { op, err })?;
        let m = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(&buf).map_err(|e| {
            Error::Decode {
                op,
                msg: e.to_string(),
            }
        })?;
        if m.header.sequence_number != seq {
            continue;
        }
        return match m.payload {
            NetlinkPayload::InnerMessage(g) => g
                .payload
                .nlas
                .iter()
                .find_map(|a| {
                    if let GenlCtrlAttrs::FamilyId(id) = a {
                        Some(*id)
                    } else {
                        None
                    }
                })
                .ok_or(Error::Decode {
                    op,
                    msg: "CTRL_ATTR_FAMILY_ID missing".into(),
                }),
            NetlinkPayload::Error(e) => match e.code.map(|c| -c.get()) {
                Some(libc::ENOENT) => Err(Error::FamilyNotFound(name)),
                Some(c) => Err(Error::from_errno(op, c)),
                None => Err(Error::Decode {
                    op,
                    msg: "ACK without family".into(),
                }),
            },
            _ => Err(Error::Decode {
                op,
                msg: "unexpected reply".into(),
            }),
        };
    }
}

/// A generic netlink connection bound to one resolved family.
pub struct Genl {
    conn: Conn,
    family: u16,
    version: u8,
}

impl Genl {
    pub fn open(name: &'static str, version: u8) -> Result<Genl> {
        let conn = Conn::generic("open generic netlink socket")?;
        let family = resolve_family(&conn, name)?;
        Ok(Genl {
            conn,
            family,
            version,
        })
    }

    /// Runs command `cmd` with attribute bytes `attrs`; returns the replies' attribute bytes.
    pub fn request(
        &self,
        cmd: u8,
        attrs: Vec<u8>,
        dump: bool,
        op: &'static str,
    ) -> Result<std::result::Result<Vec<RawGenl>, i32>> {
        let mut g = GenlMessage::from_payload(RawGenl {
            cmd,
            version: self.version,
            attrs,
        });
        g.set_resolved_family_id(self.family);
        self.conn
            .transact(NetlinkMessage::from(g), dump, op)
            .map(|r| r.map(|v| v.into_iter().map(|g| g.payload).collect()))
    }

    /// Like `request`, but every kernel error code is an `Err` for operation `op`.
    pub fn call(
        &self,
        cmd: u8,
        attrs: Vec<u8>,
        dump: bool,
        op: &'static str,
    ) -> Result<Vec<RawGenl>> {
        self.request(cmd, attrs, dump, op)?
            .map_err(|e| Error::from_errno(op, e))
    }
}
