//! The CI latency gate (`smc-analyze check`). Rules are evaluated against the
//! same [`Report`] the `report` command prints, so a number in a failing
//! rule is the number an engineer finds in the report. Rule syntax and the
//! exit codes are documented in docs/ci.md.

use crate::join::STAGES;
use crate::model::Mode;
use crate::report::Report;
use crate::stats::Summary;

/// The statistic a rule bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    Mean,
    Min,
    P50,
    P90,
    P99,
    P999,
    Max,
}

impl Stat {
    const ALL: [(&'static str, Stat); 7] = [
        ("mean", Stat::Mean),
        ("min", Stat::Min),
        ("p50", Stat::P50),
        ("p90", Stat::P90),
        ("p99", Stat::P99),
        ("p99.9", Stat::P999),
        ("max", Stat::Max),
    ];

    fn name(self) -> &'static str {
        Stat::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    fn of(self, s: &Summary) -> i64 {
        match self {
            Stat::Mean => s.mean_ns,
            Stat::Min => s.min_ns,
            Stat::P50 => s.p50_ns,
            Stat::P90 => s.p90_ns,
            Stat::P99 => s.p99_ns,
            Stat::P999 => s.p999_ns,
            Stat::Max => s.max_ns,
        }
    }
}

/// One `--max STAGE.STAT=DURATION` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxRule {
    /// A stage name of the report, or `handshake`.
    pub stage: String,
    pub stat: Stat,
    pub limit_ns: u64,
}

/// Names a rule may bound: every stage of the report, and `handshake`.
pub fn rule_targets() -> Vec<&'static str> {
    STAGES
        .iter()
        .map(|s| s.name)
        .chain(std::iter::once("handshake"))
        .collect()
}

/// Parse `STAGE.STAT=DURATION`, e.g. `e2e.p99=200us`.
pub fn parse_max(text: &str) -> Result<MaxRule, String> {
    let bad = |why: String| {
        format!("bad rule '{text}': {why} (expected STAGE.STAT=DURATION, e.g. e2e.p99=200us)")
    };
    let (lhs, rhs) = text.split_once('=').ok_or_else(|| bad("no '='".into()))?;
    let (stage, stat) = lhs
        .trim()
        .split_once('.')
        .ok_or_else(|| bad("no '.' between stage and statistic".into()))?;
    if !rule_targets().contains(&stage) {
        return Err(bad(format!(
            "unknown stage '{stage}'; stages: {}",
            rule_targets().join(", ")
        )));
    }
    let stat = Stat::ALL
        .iter()
        .find(|(n, _)| *n == stat || (stat == "p999" && *n == "p99.9"))
        .map(|(_, s)| *s)
        .ok_or_else(|| {
            bad(format!(
                "unknown statistic '{stat}'; statistics: mean, min, p50, p90, p99, p99.9, max"
            ))
        })?;
    let limit_ns = crate::duration::parse(rhs.trim()).map_err(bad)?;
    Ok(MaxRule {
        stage: stage.to_string(),
        stat,
        limit_ns,
    })
}

/// Parse an `--fail-on-incomplete` percentage (`5`, `0.5`, `5%`).
pub fn parse_pct(text: &str) -> Result<f64, String> {
    let t = text.trim().trim_end_matches('%');
    match t.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "bad percentage '{text}' (expected a number from 0 to 100, e.g. 1 or 0.5%)"
        )),
    }
}

/// Everything `check` tests.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub max: Vec<MaxRule>,
    pub fail_on_fallback: bool,
    pub fail_on_loss: bool,
    pub fail_on_incomplete_pct: Option<f64>,
}

/// One line per violated rule (empty: every rule holds), and one line per
/// rule that holds (for the log).
pub fn evaluate(r: &Report, rules: &Rules) -> (Vec<String>, Vec<String>) {
    let fmt = |ns: i64| crate::duration::fmt(ns);
    let mut bad = Vec::new();
    let mut ok = Vec::new();
    for m in &rules.max {
        let rule = format!(
            "{}.{} <= {}",
            m.stage,
            m.stat.name(),
            fmt(m.limit_ns as i64)
        );
        let summary = if m.stage == "handshake" {
            r.handshake.as_ref()
        } else {
            r.stages
                .iter()
                .find(|s| s.stage == m.stage)
                .map(|s| &s.summary)
        };
        match summary.filter(|s| s.count > 0) {
            None => bad.push(format!(
                "{rule}: no complete measurement of {} in the recordings",
                m.stage
            )),
            Some(s) => {
                let v = m.stat.of(s);
                if v > m.limit_ns as i64 {
                    bad.push(format!("{rule}: is {} over {} messages", fmt(v), s.count));
                } else {
                    ok.push(format!("{rule}: is {} over {} messages", fmt(v), s.count));
                }
            }
        }
    }
    if rules.fail_on_fallback {
        let fb: Vec<String> = r
            .connections
            .iter()
            .filter(|c| c.mode == Mode::Fallback || c.fallback.is_some())
            .map(|c| {
                let why = c
                    .fallback
                    .as_ref()
                    .map(|f| format!(" {} ({:#010x})", f.name, f.code))
                    .unwrap_or_default();
                format!("conn {}{why}", c.id)
            })
            .collect();
        if fb.is_empty() {
            ok.push("no fallback: holds".into());
        } else {
            bad.push(format!(
                "no fallback: {} connection(s) fell back to TCP: {}",
                fb.len(),
                fb.join(", ")
            ));
        }
    }
    if rules.fail_on_loss {
        let mut lines = Vec::new();
        for rec in &r.recordings {
            if rec.lost_events > 0 {
                lines.push(format!(
                    "[{}] {}: the kernel dropped {} events",
                    rec.index, rec.path, rec.lost_events
                ));
            }
            if rec.unreadable_chunks > 0 {
                lines.push(format!(
                    "[{}] {}: {} unreadable chunks",
                    rec.index, rec.path, rec.unreadable_chunks
                ));
            }
            if !rec.clean_close {
                lines.push(format!(
                    "[{}] {}: not closed cleanly, lost events unknown",
                    rec.index, rec.path
                ));
            }
        }
        if lines.is_empty() {
            ok.push("no lost events: holds".into());
        } else {
            bad.push(format!("no lost events: {}", lines.join("; ")));
        }
    }
    if let Some(pct) = rules.fail_on_incomplete_pct {
        let s = &r.summary;
        let total = s.complete_messages + s.incomplete_messages;
        let have = if total == 0 {
            0.0
        } else {
            100.0 * s.incomplete_messages as f64 / total as f64
        };
        let rule = format!("incomplete messages <= {pct}%");
        if have > pct {
            bad.push(format!(
                "{rule}: {} of {total} messages ({have:.2}%) are incomplete",
                s.incomplete_messages
            ));
        } else {
            ok.push(format!(
                "{rule}: {} of {total} ({have:.2}%)",
                s.incomplete_messages
            ));
        }
    }
    (bad, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        assert_eq!(
            parse_max("e2e.p99=200us").unwrap(),
            MaxRule {
                stage: "e2e".into(),
                stat: Stat::P99,
                limit_ns: 200_000
            }
        );
        assert_eq!(
            parse_max("rx_process.p99.9=1.5ms").unwrap().stat,
            Stat::P999
        );
        assert_eq!(
            parse_max("handshake.max=2s").unwrap().limit_ns,
            2_000_000_000
        );
        assert!(parse_max("e2e.p99=200")
            .unwrap_err()
            .contains("bad rule 'e2e.p99=200'"));
        assert!(parse_max("e2e=200us").unwrap_err().contains("no '.'"));
        assert!(parse_max("e2f.p99=200us")
            .unwrap_err()
            .contains("unknown stage 'e2f'"));
        assert!(parse_max("e2e.p98=200us")
            .unwrap_err()
            .contains("unknown statistic"));
        assert!(parse_max("e2e.p99").unwrap_err().contains("no '='"));
        assert_eq!(parse_pct("0.5%").unwrap(), 0.5);
        assert!(parse_pct("150").is_err());
    }
}
