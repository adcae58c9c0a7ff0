//! Durations as the operator types and reads them: `200us`, `1.5ms`, `2s`
//! on the command line, and the same units chosen automatically in reports.

/// Parse `250ns`, `200us` (or `µs`), `1.5ms`, `2s`, `0.5m`... into nanoseconds.
/// A bare number is refused: the unit is never guessed.
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            format!("duration {text:?} has no unit (use ns, us, ms or s, e.g. 200us)")
        })?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("duration {text:?}: {num:?} is not a number"))?;
    let scale = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        other => {
            return Err(format!(
                "duration {text:?}: unknown unit {other:?} (use ns, us, ms or s)"
            ))
        }
    };
    let ns = value * scale;
    if !ns.is_finite() || !(0.0..1.8e19).contains(&ns) {
        return Err(format!("duration {text:?} is out of range"));
    }
    Ok(ns.round() as u64)
}

/// Human form with 3-4 significant digits: `812ns`, `12.3us`, `1.50ms`, `2.001s`.
pub fn fmt(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let a = ns.unsigned_abs() as f64;
    let body = if a < 1e3 {
        format!("{a:.0}ns")
    } else if a < 1e6 {
        fmt_unit(a / 1e3, "us")
    } else if a < 1e9 {
        fmt_unit(a / 1e6, "ms")
    } else {
        format!("{:.3}s", a / 1e9)
    };
    format!("{sign}{body}")
}

fn fmt_unit(v: f64, unit: &str) -> String {
    if v < 10.0 {
        format!("{v:.2}{unit}")
    } else if v < 100.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("200us").unwrap(), 200_000);
        assert_eq!(parse("1.5ms").unwrap(), 1_500_000);
        assert_eq!(parse("2s").unwrap(), 2_000_000_000);
        assert_eq!(parse("7ns").unwrap(), 7);
        assert_eq!(parse("3µs").unwrap(), 3_000);
        assert!(parse("200").is_err());
        assert!(parse("ms").is_err());
        assert!(parse("1.2.3ms").is_err());
        assert!(parse("5 parsecs").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(fmt(812), "812ns");
        assert_eq!(fmt(12_345), "12.3us");
        assert_eq!(fmt(1_500_000), "1.50ms");
        assert_eq!(fmt(-2_000), "-2.00us");
        assert_eq!(fmt(2_001_000_000), "2.001s");
    }
}
