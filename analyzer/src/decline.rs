//! Names for the kernel's `SMC_CLC_DECL_*` codes (net/smc/smc_clc.h), so a
//! fallback or a CLC DECLINE is reported as "NOSMCRDEV: no SMC-R device found"
//! rather than as a hex number. The table is the union of Linux 6.1 and 6.12
//! plus the mainline additions after 6.12; a code this table does not know is
//! shown with its class (the top byte pair) so it is still readable.

/// One decline code: value, kernel macro suffix, meaning.
pub struct Decline {
    pub code: u32,
    pub name: &'static str,
    pub meaning: &'static str,
}

/// Every `SMC_CLC_DECL_*` value, ordered by code.
pub const DECLINES: &[Decline] = &[
    Decline {
        code: 0x0101_0000,
        name: "MEM",
        meaning: "insufficient memory resources",
    },
    Decline {
        code: 0x0201_0000,
        name: "TIMEOUT_CL",
        meaning: "timeout waiting for QP confirm link",
    },
    Decline {
        code: 0x0202_0000,
        name: "TIMEOUT_AL",
        meaning: "timeout waiting for QP add link",
    },
    Decline {
        code: 0x0300_0000,
        name: "CNFERR",
        meaning: "configuration error",
    },
    Decline {
        code: 0x0301_0000,
        name: "PEERNOSMC",
        meaning: "peer did not indicate SMC",
    },
    Decline {
        code: 0x0302_0000,
        name: "IPSEC",
        meaning: "IPsec usage",
    },
    Decline {
        code: 0x0303_0000,
        name: "NOSMCDEV",
        meaning: "no SMC device found (R or D)",
    },
    Decline {
        code: 0x0303_0001,
        name: "NOSMCDDEV",
        meaning: "no SMC-D device found",
    },
    Decline {
        code: 0x0303_0002,
        name: "NOSMCRDEV",
        meaning: "no SMC-R device found",
    },
    Decline {
        code: 0x0303_0003,
        name: "NOISM2SUPP",
        meaning: "hardware has no ISMv2 support",
    },
    Decline {
        code: 0x0303_0004,
        name: "NOV2EXT",
        meaning: "peer sent no CLC v2 extension",
    },
    Decline {
        code: 0x0303_0005,
        name: "NOV2DEXT",
        meaning: "peer sent no CLC SMC-Dv2 extension",
    },
    Decline {
        code: 0x0303_0006,
        name: "NOSEID",
        meaning: "peer sent no SEID",
    },
    Decline {
        code: 0x0303_0007,
        name: "NOSMCD2DEV",
        meaning: "no SMC-Dv2 device found",
    },
    Decline {
        code: 0x0303_0008,
        name: "NOUEID",
        meaning: "peer sent no UEID",
    },
    Decline {
        code: 0x0303_0009,
        name: "RELEASEERR",
        meaning: "release version negotiation failed (6.12)",
    },
    Decline {
        code: 0x0303_000a,
        name: "MAXCONNERR",
        meaning: "max connections negotiation failed (6.12)",
    },
    Decline {
        code: 0x0303_000b,
        name: "MAXLINKERR",
        meaning: "max links negotiation failed (6.12)",
    },
    Decline {
        code: 0x0303_000c,
        name: "FEATUNSUPP",
        meaning: "supplemental features not supported (after 6.12)",
    },
    Decline {
        code: 0x0304_0000,
        name: "MODEUNSUPP",
        meaning: "SMC modes do not match (R or D)",
    },
    Decline {
        code: 0x0305_0000,
        name: "RMBE_EC",
        meaning: "peer has eyecatcher in RMBE",
    },
    Decline {
        code: 0x0306_0000,
        name: "OPTUNSUPP",
        meaning: "fastopen sockopt not supported",
    },
    Decline {
        code: 0x0307_0000,
        name: "DIFFPREFIX",
        meaning: "IP prefix / subnet mismatch",
    },
    Decline {
        code: 0x0308_0000,
        name: "GETVLANERR",
        meaning: "error getting VLAN id of IP device",
    },
    Decline {
        code: 0x0309_0000,
        name: "ISMVLANERR",
        meaning: "error registering VLAN id on ISM device",
    },
    Decline {
        code: 0x030a_0000,
        name: "NOACTLINK",
        meaning: "no active SMC-R link in link group",
    },
    Decline {
        code: 0x030b_0000,
        name: "NOSRVLINK",
        meaning: "SMC-R link from server not found",
    },
    Decline {
        code: 0x030c_0000,
        name: "VERSMISMAT",
        meaning: "SMC version mismatch",
    },
    Decline {
        code: 0x030d_0000,
        name: "MAX_DMB",
        meaning: "SMC-D DMB limit exceeded",
    },
    Decline {
        code: 0x030e_0000,
        name: "NOROUTE",
        meaning: "SMC-Rv2 connection: no route to peer",
    },
    Decline {
        code: 0x030f_0000,
        name: "NOINDIRECT",
        meaning: "SMC-Rv2 connection: indirect route mismatch",
    },
    Decline {
        code: 0x0400_0000,
        name: "SYNCERR",
        meaning: "synchronization error",
    },
    Decline {
        code: 0x0500_0000,
        name: "PEERDECL",
        meaning: "peer declined during handshake",
    },
    Decline {
        code: 0x0999_0000,
        name: "INTERR",
        meaning: "internal error",
    },
    Decline {
        code: 0x0999_0001,
        name: "ERR_RTOK",
        meaning: "internal error: rtoken handling failed",
    },
    Decline {
        code: 0x0999_0002,
        name: "ERR_RDYLNK",
        meaning: "internal error: IB ready link failed",
    },
    Decline {
        code: 0x0999_0003,
        name: "ERR_REGBUF",
        meaning: "internal error: registering RDMA buffers failed",
    },
];

/// The table entry of `code`, if the code is known.
pub fn lookup(code: u32) -> Option<&'static Decline> {
    DECLINES.iter().find(|d| d.code == code)
}

/// Short name: `NOSMCRDEV`, or for an unknown sub-code `NOSMCDEV+0x0d`, or `0x12345678`.
pub fn name(code: u32) -> String {
    if let Some(d) = lookup(code) {
        return d.name.to_string();
    }
    match lookup(code & 0xffff_0000) {
        Some(class) => format!("{}+{:#06x}", class.name, code & 0xffff),
        None => format!("{code:#010x}"),
    }
}

/// One-line description: `0x03030002 NOSMCRDEV (no SMC-R device found)`.
pub fn describe(code: u32) -> String {
    match lookup(code) {
        Some(d) => format!("{code:#010x} {} ({})", d.name, d.meaning),
        None => match lookup(code & 0xffff_0000) {
            Some(c) => format!(
                "{code:#010x} {} (unknown sub-code of: {})",
                name(code),
                c.meaning
            ),
            None => format!("{code:#010x} (unknown decline code)"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in DECLINES.windows(2) {
            assert!(
                w[0].code < w[1].code,
                "{:#x} before {:#x}",
                w[0].code,
                w[1].code
            );
        }
    }

    #[test]
    fn names() {
        assert_eq!(name(0x0303_0002), "NOSMCRDEV");
        assert_eq!(name(0x0303_000b), "MAXLINKERR");
        assert_eq!(name(0x0303_00ff), "NOSMCDEV+0x00ff");
        assert_eq!(name(0x7700_0000), "0x77000000");
        assert!(describe(0x0500_0000).contains("peer declined"));
    }
}
