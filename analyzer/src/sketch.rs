//! Quantiles in bounded memory. A long recording has hundreds of millions of
//! messages; keeping every stage duration for exact order statistics cost
//! ~20 bytes per event (1.9 GiB at 100M events). A [`Series`] is exact (a
//! vector of the values) while it holds at most its exact limit of values,
//! then folds them into a [`Sketch`]: logarithmic buckets of relative width
//! `alpha` (the DDSketch idea), whose quantiles are within a relative error of
//! `alpha` of the exact nearest-rank value and whose size depends on the
//! range of the values (about 2,800 buckets span 1 ns to 1,000 s at 0.5%),
//! not on their number. Count, sum (mean), min and max stay exact.

/// Relative accuracy of approximate quantiles: 0.5%.
pub const ALPHA: f64 = 0.005;

/// Values a series keeps exactly before it switches to a sketch.
pub const EXACT_LIMIT: usize = 65_536;

/// Log-bucketed counts of values: positive values in buckets of index
/// `ceil(ln v / ln gamma)`, negative ones likewise by magnitude, zeros apart.
#[derive(Clone, Debug)]
pub struct Sketch {
    ln_gamma: f64,
    gamma: f64,
    pos: Buckets,
    neg: Buckets,
    zeros: u64,
    count: u64,
}

/// A dense run of bucket counters starting at bucket index `first`.
#[derive(Clone, Debug, Default)]
struct Buckets {
    first: i32,
    counts: Vec<u64>,
}

impl Buckets {
    fn add(&mut self, i: i32, n: u64) {
        if self.counts.is_empty() {
            self.first = i;
            self.counts.push(n);
            return;
        }
        if i < self.first {
            let grow = (self.first - i) as usize;
            let mut v = vec![0u64; grow];
            v.append(&mut self.counts);
            self.counts = v;
            self.first = i;
        }
        let k = (i - self.first) as usize;
        if k >= self.counts.len() {
            self.counts.resize(k + 1, 0);
        }
        self.counts[k] += n;
    }
}

impl Sketch {
    /// An empty sketch of relative accuracy `alpha` (0 < alpha < 1).
    pub fn new(alpha: f64) -> Sketch {
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        Sketch {
            ln_gamma: gamma.ln(),
            gamma,
            pos: Buckets::default(),
            neg: Buckets::default(),
            zeros: 0,
            count: 0,
        }
    }

    fn index(&self, mag: f64) -> i32 {
        (mag.ln() / self.ln_gamma).ceil() as i32
    }

    /// The representative of bucket `i`: within `alpha` of every value in it.
    fn value(&self, i: i32) -> f64 {
        2.0 * self.gamma.powi(i) / (self.gamma + 1.0)
    }

    pub fn add(&mut self, v: i64) {
        self.count += 1;
        match v {
            0 => self.zeros += 1,
            v if v > 0 => {
                let i = self.index(v as f64);
                self.pos.add(i, 1);
            }
            v => {
                let i = self.index((v as f64).abs());
                self.neg.add(i, 1);
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Buckets in use (the memory the sketch holds, 8 bytes each).
    pub fn buckets(&self) -> usize {
        self.pos.counts.len() + self.neg.counts.len()
    }

    /// Nearest-rank quantile (as [`crate::stats::quantile`]), approximate:
    /// within a relative error of alpha of the exact value. 0 when empty.
    pub fn quantile(&self, q: f64) -> i64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        // Most negative first: negative buckets from the largest magnitude.
        for (k, &n) in self.neg.counts.iter().enumerate().rev() {
            seen += n;
            if seen >= rank {
                return -self.value(self.neg.first + k as i32).round() as i64;
            }
        }
        seen += self.zeros;
        if seen >= rank {
            return 0;
        }
        for (k, &n) in self.pos.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return self.value(self.pos.first + k as i32).round() as i64;
            }
        }
        // Unreachable: the counts sum to `count`.
        self.value(self.pos.first + self.pos.counts.len() as i32 - 1)
            .round() as i64
    }
}

/// A series of durations (ns): exact while small, a [`Sketch`] beyond its
/// limit. Count, sum, min and max are always exact.
#[derive(Clone, Debug)]
pub struct Series {
    limit: usize,
    exact: Vec<i64>,
    sketch: Option<Sketch>,
    count: u64,
    sum: i128,
    min: i64,
    max: i64,
}

impl Default for Series {
    fn default() -> Series {
        Series::with_limit(EXACT_LIMIT)
    }
}

impl Series {
    /// A series exact up to `limit` values.
    pub fn with_limit(limit: usize) -> Series {
        Series {
            limit,
            exact: Vec::new(),
            sketch: None,
            count: 0,
            sum: 0,
            min: i64::MAX,
            max: i64::MIN,
        }
    }

    pub fn push(&mut self, v: i64) {
        self.count += 1;
        self.sum += v as i128;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if let Some(s) = self.sketch.as_mut() {
            s.add(v);
            return;
        }
        self.exact.push(v);
        if self.exact.len() > self.limit {
            let mut s = Sketch::new(ALPHA);
            for &x in &self.exact {
                s.add(x);
            }
            self.exact = Vec::new();
            self.sketch = Some(s);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether quantiles are approximate (the series outgrew its limit).
    pub fn approximate(&self) -> bool {
        self.sketch.is_some()
    }

    pub fn mean(&self) -> i64 {
        if self.count == 0 {
            0
        } else {
            (self.sum / self.count as i128) as i64
        }
    }

    pub fn min(&self) -> i64 {
        self.min
    }

    pub fn max(&self) -> i64 {
        self.max
    }

    /// Sort the exact values (call once before [`Series::quantile`]).
    pub fn seal(&mut self) {
        self.exact.sort_unstable();
    }

    /// Nearest-rank quantile: exact, or within [`ALPHA`] relative error when
    /// [`Series::approximate`], clamped to the exact min and max. Needs [`Series::seal`].
    pub fn quantile(&self, q: f64) -> i64 {
        match &self.sketch {
            Some(s) => s.quantile(q).clamp(self.min, self.max),
            None => crate::stats::quantile(&self.exact, q),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic test data without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn unit(&mut self) -> f64 {
            ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
    }

    const QS: [f64; 9] = [0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0];

    /// Every quantile of the sketch within alpha (plus rounding to whole ns)
    /// of the exact nearest-rank value.
    fn check(values: &[i64]) {
        let mut s = Series::with_limit(1000);
        for &v in values {
            s.push(v);
        }
        assert!(s.approximate());
        s.seal();
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        for q in QS {
            let exact = crate::stats::quantile(&sorted, q);
            let got = s.quantile(q);
            let err = (got - exact).abs() as f64;
            let bound = ALPHA * exact.abs() as f64 + 1.0;
            assert!(
                err <= bound,
                "q={q}: sketch {got}, exact {exact}, error {err} > bound {bound}"
            );
        }
        assert_eq!(s.count(), values.len() as u64);
        assert_eq!(s.min(), sorted[0]);
        assert_eq!(s.max(), *sorted.last().unwrap());
        let mean = (values.iter().map(|&v| v as i128).sum::<i128>() / values.len() as i128) as i64;
        assert_eq!(s.mean(), mean);
    }

    #[test]
    fn uniform_values_within_bound() {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let v: Vec<i64> = (0..200_000)
            .map(|_| (r.next() % 10_000_000) as i64)
            .collect();
        check(&v);
    }

    #[test]
    fn heavy_tailed_values_within_bound() {
        // Pareto(alpha 1.1) scaled to microseconds, and a log-normal-like mix
        // spanning 1 ns .. 100 s, as latencies with rare multi-second stalls.
        let mut r = Rng(42);
        let pareto: Vec<i64> = (0..300_000)
            .map(|_| (10_000.0 / r.unit().powf(1.0 / 1.1)).min(1e17) as i64)
            .collect();
        check(&pareto);
        let wide: Vec<i64> = (0..300_000)
            .map(|_| 10f64.powf(r.unit() * 11.0) as i64)
            .collect();
        check(&wide);
    }

    #[test]
    fn negative_and_zero_values_within_bound() {
        // Cross-host stages can be slightly negative when the clock offset
        // estimate is off by more than the stage.
        let mut r = Rng(7);
        let v: Vec<i64> = (0..100_000)
            .map(|_| (r.next() % 2_000_001) as i64 - 1_000_000)
            .chain(std::iter::repeat_n(0, 5000))
            .collect();
        check(&v);
    }

    #[test]
    fn exact_until_limit_then_bounded_memory() {
        let mut s = Series::with_limit(10);
        for v in 1..=10 {
            s.push(v);
        }
        assert!(!s.approximate());
        s.seal();
        assert_eq!(
            (s.quantile(0.5), s.quantile(0.9), s.quantile(1.0)),
            (5, 9, 10)
        );
        let mut big = Series::default();
        let mut r = Rng(3);
        for _ in 0..2_000_000 {
            big.push((r.next() % 1_000_000_000) as i64 + 1);
        }
        let sk = big.sketch.as_ref().expect("sketch after the limit");
        // 1 ns .. 1 s at 0.5%: ln(1e9)/ln(1.01005) ~ 2,073 buckets at most.
        assert!(sk.buckets() <= 2100, "{} buckets", sk.buckets());
        assert!(big.exact.capacity() == 0);
    }

    #[test]
    fn single_value_and_empty() {
        let s = Sketch::new(ALPHA);
        assert_eq!(s.quantile(0.5), 0);
        let mut one = Series::with_limit(0);
        one.push(123_456);
        one.seal();
        assert!(one.approximate());
        // Clamped to the exact min/max.
        assert_eq!(one.quantile(0.5), 123_456);
    }
}
