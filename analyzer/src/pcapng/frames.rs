//! Frame bytes: Ethernet/IP/TCP/UDP headers with their checksums, RoCEv2
//! (BTH, RETH, ICRC), CLC messages and CDC payloads, and the SMC-D
//! encapsulation. Pure functions from recorded values to bytes; nothing here
//! knows about recordings or the pcapng file.

use super::*;

pub(super) fn ip_of(a: &Addr) -> Option<IpAddr> {
    a.ip.parse().ok()
}

/// Locally administered MAC naming a recording's host (02:53:4d:43:00:rec).
pub(super) fn mac(rec_hint: u8) -> [u8; 6] {
    [0x02, 0x53, 0x4d, 0x43, 0x00, rec_hint]
}

pub(super) fn ones_sum(data: &[u8], mut sum: u32) -> u32 {
    for c in data.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    sum
}

pub(super) fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IP header for an L4 payload; `l4` already holds its header.
/// Returns the frame and the offset of the IP header. `l4_csum_at` (offset
/// inside `l4`) receives the TCP checksum; UDP over IPv4 keeps 0 (allowed).
pub(super) fn ip_frame(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    mut l4: Vec<u8>,
    l4_csum_at: Option<usize>,
    macs: (u8, u8),
) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 40 + l4.len());
    f.extend_from_slice(&mac(macs.1));
    f.extend_from_slice(&mac(macs.0));
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if let Some(at) = l4_csum_at {
                let mut sum = ones_sum(&s.octets(), 0);
                sum = ones_sum(&d.octets(), sum);
                sum += proto as u32 + l4.len() as u32;
                let c = fold(ones_sum(&l4, sum));
                l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            h[6] = 0x40; // DF
            h[8] = 64;
            h[9] = proto;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let c = fold(ones_sum(&h, 0));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&h);
        }
        _ => {
            let s6 = match src {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            let d6 = match dst {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            if let Some(at) = l4_csum_at {
                let mut sum = ones_sum(&s6.octets(), 0);
                sum = ones_sum(&d6.octets(), sum);
                sum += l4.len() as u32 + proto as u32;
                let c = fold(ones_sum(&l4, sum));
                l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
            f.extend_from_slice(&0x86DDu16.to_be_bytes());
            let mut h = [0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
            h[6] = proto;
            h[7] = 64;
            h[8..24].copy_from_slice(&s6.octets());
            h[24..40].copy_from_slice(&d6.octets());
            f.extend_from_slice(&h);
        }
    }
    f.extend_from_slice(&l4);
    f
}

/// RoCEv2 invariant CRC (IBA Annex A17): CRC-32 over 8 bytes of 1s, the IP
/// header with TOS/TTL/checksum (IPv4) or class/flow/hop limit (IPv6) set to
/// 1s, the UDP header with its checksum set to 1s, the BTH with its reserved
/// byte set to 1s, and the payload. Appended little-endian, as rxe does.
pub(super) fn append_icrc(frame: &mut Vec<u8>) {
    let mut p = vec![0xffu8; 8];
    let mut ip = frame[14..].to_vec();
    let ip_len = if ip[0] >> 4 == 4 {
        ip[1] = 0xff;
        ip[8] = 0xff;
        ip[10] = 0xff;
        ip[11] = 0xff;
        20
    } else {
        ip[0] |= 0x0f;
        ip[1] = 0xff;
        ip[2] = 0xff;
        ip[3] = 0xff;
        ip[7] = 0xff;
        40
    };
    ip[ip_len + 6] = 0xff;
    ip[ip_len + 7] = 0xff;
    ip[ip_len + 8 + 4] = 0xff;
    p.extend_from_slice(&ip);
    let crc = crc32fast::hash(&p);
    frame.extend_from_slice(&crc.to_le_bytes());
}

/// A RoCEv2 frame: UDP 4791, BTH, `payload`, ICRC. The IP/UDP lengths
/// include the ICRC.
#[allow(clippy::too_many_arguments)] // one argument per header field that varies, plus the payload
pub(super) fn rocev2(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    opcode: u8,
    dqp: u32,
    psn: u32,
    payload: &[u8],
    macs: (u8, u8),
) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(8 + 12 + payload.len() + 4);
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&ROCEV2_PORT.to_be_bytes());
    l4.extend_from_slice(&((8 + 12 + payload.len() + 4) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    // BTH: opcode, SE|M|pad|tver, P_Key, resv8a, dest QP, A|resv7, PSN.
    l4.push(opcode);
    l4.push(if opcode == OP_SEND_ONLY { 0x80 } else { 0x00 });
    l4.extend_from_slice(&0xffffu16.to_be_bytes());
    l4.push(0);
    l4.extend_from_slice(&dqp.to_be_bytes()[1..]);
    l4.push(0x80);
    l4.extend_from_slice(&(psn & 0xff_ffff).to_be_bytes()[1..]);
    l4.extend_from_slice(payload);
    // The ICRC's 4 bytes are counted in the IP length: add a placeholder,
    // build the frame, then replace it with the CRC over everything before.
    l4.extend_from_slice(&[0; 4]);
    let mut f = ip_frame(src, dst, 17, l4, None, macs);
    f.truncate(f.len() - 4);
    append_icrc(&mut f);
    // IPv6 requires a UDP checksum (IPv4 may leave it 0, as RoCEv2 does);
    // the ICRC masks that field, so it is filled in last.
    if f[12..14] == [0x86, 0xDD] {
        let mut sum = ones_sum(&f[22..54], 0);
        sum += 17 + (f.len() - 54) as u32;
        let c = match fold(ones_sum(&f[54..], sum)) {
            0 => 0xffff,
            c => c,
        };
        f[60..62].copy_from_slice(&c.to_be_bytes());
    }
    f
}

/// The 44-byte wire CDC (`struct smc_cdc_msg`, big-endian).
pub fn cdc_bytes(c: &event::Cdc) -> [u8; 44] {
    let mut b = [0u8; 44];
    b[0] = 0xFE;
    b[1] = 44;
    b[2..4].copy_from_slice(&c.seqno.to_be_bytes());
    b[4..8].copy_from_slice(&c.token.to_be_bytes());
    b[10..12].copy_from_slice(&c.prod.wrap.to_be_bytes());
    b[12..16].copy_from_slice(&c.prod.count.to_be_bytes());
    b[18..20].copy_from_slice(&c.cons.wrap.to_be_bytes());
    b[20..24].copy_from_slice(&c.cons.count.to_be_bytes());
    b[24] = c.prod_flags;
    b[25] = c.conn_state_flags;
    b
}

/// `smc_compress_bufsize`: 0 = 16 KiB, n = 16 KiB << n.
pub(super) fn compress_bufsize(len: u32) -> u8 {
    let mut n = 0u8;
    while (16384u64 << n) < len as u64 && n < 15 {
        n += 1;
    }
    n
}

/// What a synthesized CLC message carries besides its header.
pub(super) struct ClcFields {
    pub(super) smcd: bool,
    pub(super) qpn: u32,
    pub(super) alert_token: u32,
    pub(super) rmbe_size: u32,
    pub(super) dmb_token: u64,
    pub(super) diag: u32,
}

/// Minimal default lengths (v1) when the recorded length is unusable.
pub(super) fn clc_default_len(t: u8, smcd: bool) -> u16 {
    match t {
        1 => 52,
        2 | 3 if smcd => 48,
        2 | 3 => 68,
        _ => 28,
    }
}

/// A CLC message of `len` bytes: header, the known fields at their
/// `struct smc_clc_msg_*` offsets, zeros, and the trailing eyecatcher.
pub(super) fn clc_bytes(t: u8, len: u16, version: u8, path: u8, f: &ClcFields) -> Vec<u8> {
    let min = 12;
    let len = if (len as usize) < min {
        clc_default_len(t, f.smcd)
    } else {
        len
    };
    let eye = if f.smcd || path == b'D' || version >= 2 {
        EYE_SMCD
    } else {
        EYE_SMCR
    };
    let mut b = vec![0u8; len as usize];
    b[0..4].copy_from_slice(&eye);
    b[4] = t;
    b[5..7].copy_from_slice(&len.to_be_bytes());
    b[7] = (version.max(1) & 0x0f) << 4 | if f.smcd { 0x01 } else { 0x00 };
    let n = b.len();
    b[n - 4..].copy_from_slice(&eye);
    match t {
        2 | 3 if !f.smcd && n >= 68 => {
            b[38..41].copy_from_slice(&f.qpn.to_be_bytes()[1..]);
            b[46..50].copy_from_slice(&f.alert_token.to_be_bytes());
            b[50] = compress_bufsize(f.rmbe_size) << 4 | 3; // qp_mtu 3 = 1024
        }
        2 | 3 if f.smcd && n >= 48 => {
            b[16..24].copy_from_slice(&f.dmb_token.to_be_bytes());
        }
        4 if n >= 28 => {
            b[16..20].copy_from_slice(&f.diag.to_be_bytes());
        }
        _ => {}
    }
    b
}

pub(super) fn tcp_segment(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let hl = 20 + opts.len();
    let mut t = Vec::with_capacity(hl + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.push(((hl / 4) as u8) << 4);
    t.push(flags);
    t.extend_from_slice(&65535u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(opts);
    t.extend_from_slice(payload);
    t
}

/// The 32-byte `struct smcd_cdc_msg` as the kernel lays it out (x86: little-endian).
pub(super) fn smcd_cdc_bytes(c: &event::Cdc) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = 0xFE;
    let cur = |b: &mut [u8], cu: &event::Curs, pf: u8, cf: u8| {
        b[0..2].copy_from_slice(&cu.wrap.to_le_bytes());
        b[2..6].copy_from_slice(&cu.count.to_le_bytes());
        b[6] = pf;
        b[7] = cf;
    };
    cur(&mut b[8..16], &c.prod, c.prod_flags, c.conn_state_flags);
    cur(&mut b[16..24], &c.cons, 0, 0);
    b
}

/// An Ethernet frame with EtherType 0x88B5 carrying `p`.
pub(super) fn eth_raw(p: &[u8], macs: (u8, u8)) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + p.len());
    f.extend_from_slice(&mac(macs.1));
    f.extend_from_slice(&mac(macs.0));
    f.extend_from_slice(&SMCD_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(p);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn ipv4_header_checksum_verifies() {
        let f = ip_frame(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            6,
            tcp_segment(1, 2, 1, 1, 0x18, &[], b"abc"),
            Some(16),
            (1, 2),
        );
        assert_eq!(fold(ones_sum(&f[14..34], 0)), 0);
    }

    /// Ones-complement sum of the IPv6 pseudo header and the L4 bytes: 0xffff when valid.
    pub(super) fn v6_l4_sum(f: &[u8], proto: u8) -> u16 {
        let mut sum = ones_sum(&f[22..54], 0);
        sum += proto as u32 + (f.len() - 54) as u32;
        !fold(ones_sum(&f[54..], sum))
    }

    #[test]
    pub(super) fn ipv6_tcp_and_udp_checksums_verify() {
        let (a, b): (IpAddr, IpAddr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let t = ip_frame(
            a,
            b,
            6,
            tcp_segment(1, 2, 1, 1, 0x18, &[], b"abcde"),
            Some(16),
            (1, 2),
        );
        assert_eq!(&t[12..14], &[0x86, 0xDD]);
        assert_eq!(v6_l4_sum(&t, 6), 0xffff);
        let u = rocev2(a, b, 0xC001, OP_SEND_ONLY, 7, 1, &[0xFE; 44], (1, 2));
        assert_ne!(&u[60..62], &[0, 0]);
        assert_eq!(v6_l4_sum(&u, 17), 0xffff);
    }

    #[test]
    pub(super) fn clc_accept_carries_qpn_and_token() {
        let f = ClcFields {
            smcd: false,
            qpn: 0x123456,
            alert_token: 0xdeadbeef,
            rmbe_size: 65536,
            dmb_token: 0,
            diag: 0,
        };
        let b = clc_bytes(2, 68, 1, b'R', &f);
        assert_eq!(&b[0..4], &EYE_SMCR);
        assert_eq!(u16::from_be_bytes([b[5], b[6]]), 68);
        assert_eq!(&b[38..41], &[0x12, 0x34, 0x56]);
        assert_eq!(&b[46..50], &0xdeadbeefu32.to_be_bytes());
        assert_eq!(b[50] >> 4, 2);
        assert_eq!(&b[64..68], &EYE_SMCR);
    }
}

#[cfg(test)]
mod icrc_tests {
    use super::*;

    /// A CDC frame whose ICRC was computed independently with scapy's
    /// `scapy.contrib.roce.BTH` (2.6): `Ether(frame)[BTH].icrc = None; raw(...)`.
    #[test]
    pub(super) fn icrc_matches_an_independent_implementation() {
        let c = event::Cdc {
            seqno: 7,
            token: 0x0102_0304,
            prod: event::Curs {
                count: 4160,
                wrap: 1,
                _pad: 0,
            },
            cons: event::Curs {
                count: 64,
                wrap: 0,
                _pad: 0,
            },
            prod_flags: 0x10,
            conn_state_flags: 0,
            ..Default::default()
        };
        let f = rocev2(
            "10.77.0.1".parse().unwrap(),
            "10.77.0.2".parse().unwrap(),
            0xC011,
            OP_SEND_ONLY,
            0x11,
            5,
            &cdc_bytes(&c),
            (1, 2),
        );
        assert_eq!(f.len(), 14 + 20 + 8 + 12 + 44 + 4);
        assert_eq!(&f[f.len() - 4..], &[0xc6, 0x2f, 0x2d, 0xcc]);
    }
}
