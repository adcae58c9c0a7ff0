//! Order statistics of stage durations. Quantiles are nearest-rank: exact
//! (on the sorted values, so a p99 is a duration some message really had)
//! while a series is small, within 0.5% relative error beyond
//! [`crate::sketch::EXACT_LIMIT`] values (see [`crate::sketch`]), so memory
//! does not grow with the recording. polars is deliberately not used (its
//! Arrow/Parquet parts are Apache-2.0 only, and it keeps whole tables in
//! memory; see docs/analyzer.md).

use crate::sketch::Series;

/// count, mean and quantiles of one set of durations (ns).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ns: i64,
    pub min_ns: i64,
    pub p50_ns: i64,
    pub p90_ns: i64,
    pub p99_ns: i64,
    pub p999_ns: i64,
    pub max_ns: i64,
    /// The quantiles (p50..p99.9) are approximate (within 0.5% relative
    /// error): the series had more than 65,536 values. Count, mean, min and
    /// max are always exact. Absent from JSON when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub approximate: bool,
}

impl Summary {
    /// The table cells every report shows for a summary, in column order:
    /// count, mean, p50, p90, p99, p99.9, max (durations human-formatted).
    pub fn cells(&self) -> [String; 7] {
        use crate::duration::fmt;
        [
            self.count.to_string(),
            fmt(self.mean_ns),
            fmt(self.p50_ns),
            fmt(self.p90_ns),
            fmt(self.p99_ns),
            fmt(self.p999_ns),
            fmt(self.max_ns),
        ]
    }
}

/// Nearest-rank quantile of sorted values: the smallest value with at least
/// `q` of all values at or below it.
pub fn quantile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summary of `values` (sorted in place); `None` when empty.
pub fn summarize(values: &mut [i64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let sum: i128 = values.iter().map(|&v| v as i128).sum();
    Some(Summary {
        count: values.len() as u64,
        mean_ns: (sum / values.len() as i128) as i64,
        min_ns: values[0],
        p50_ns: quantile(values, 0.50),
        p90_ns: quantile(values, 0.90),
        p99_ns: quantile(values, 0.99),
        p999_ns: quantile(values, 0.999),
        max_ns: values[values.len() - 1],
        approximate: false,
    })
}

/// Summary of a [`Series`]; `None` when empty.
pub fn summarize_series(s: &mut Series) -> Option<Summary> {
    if s.is_empty() {
        return None;
    }
    s.seal();
    Some(Summary {
        count: s.count(),
        mean_ns: s.mean(),
        min_ns: s.min(),
        p50_ns: s.quantile(0.50),
        p90_ns: s.quantile(0.90),
        p99_ns: s.quantile(0.99),
        p999_ns: s.quantile(0.999),
        max_ns: s.max(),
        approximate: s.approximate(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<i64> = (1..=1000).rev().collect();
        let s = summarize(&mut v).unwrap();
        assert_eq!(
            (s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns, s.min_ns),
            (500, 900, 990, 999, 1000, 1)
        );
        assert_eq!(s.mean_ns, 500);
        let mut one = vec![7];
        let s = summarize(&mut one).unwrap();
        assert_eq!((s.p50_ns, s.p999_ns), (7, 7));
        assert!(summarize(&mut []).is_none());
        // A small series gives the same summary as the exact vector.
        let mut series = Series::default();
        (1..=1000).rev().for_each(|v| series.push(v));
        let mut v: Vec<i64> = (1..=1000).collect();
        assert_eq!(summarize_series(&mut series), summarize(&mut v));
        assert!(summarize_series(&mut Series::default()).is_none());
        assert_eq!(quantile(&[1, 2, 3, 4], 0.5), 2);
        assert_eq!(quantile(&[1, 2, 3, 4], 0.51), 3);
    }
}
