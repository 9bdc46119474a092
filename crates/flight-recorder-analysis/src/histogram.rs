//! A histogram of durations with bounded relative error, for percentiles of any number of values
//! in fixed memory.
//!
//! Values (nanoseconds) fall into log-linear buckets: values below 64 ns have a bucket each;
//! above, every power of two is cut into 32 equal buckets, so a bucket is at most 1/32 (3.1 %)
//! wider than its lower bound. A percentile is reported as the middle of its bucket, clamped to
//! the exact minimum and maximum, which are kept aside. Memory: 59 × 32 counters, whatever the
//! number of values.

use flight_recorder_format::units::format_duration_bound;

/// Linear sub-buckets per power of two.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this have a bucket of their own.
const LINEAR: u64 = 2 * SUB;
/// Buckets: the linear ones, then `SUB` for each power of two from `LINEAR` to 2^64.
const BUCKETS: usize = (LINEAR + (64 - SUB_BITS as u64 - 1) * SUB) as usize;

/// The coarse bucket bounds used to show a histogram: decades from 10 µs to 1 s.
pub const DISPLAY_BOUNDS_NS: [u64; 6] = [
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// A histogram of durations in nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// The usual percentiles of a histogram, nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// How many values.
    pub count: u64,
    /// The median.
    pub p50: u64,
    /// The 90th percentile.
    pub p90: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The largest value (exact).
    pub max: u64,
    /// The mean (exact, rounded down).
    pub mean: u64,
}

#[inline(always)]
fn bucket_of(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let log = 63 - value.leading_zeros(); // >= SUB_BITS + 1
    let shift = log - SUB_BITS;
    let sub = (value >> shift) - SUB; // 0..SUB
    (LINEAR + u64::from(log - SUB_BITS - 1) * SUB + sub) as usize
}

/// The lowest value of a bucket and its width.
fn bucket_range(bucket: usize) -> (u64, u64) {
    let b = bucket as u64;
    if b < LINEAR {
        return (b, 1);
    }
    let rest = b - LINEAR;
    let log = rest / SUB + u64::from(SUB_BITS) + 1;
    let sub = rest % SUB;
    let shift = log - u64::from(SUB_BITS);
    ((SUB + sub) << shift, 1 << shift)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: Vec::new(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Adds one value.
    #[inline(always)]
    pub fn record(&mut self, value: u64) {
        if self.counts.is_empty() {
            self.allocate();
        }
        if let Some(count) = self.counts.get_mut(bucket_of(value)) {
            *count += 1;
        }
        self.count += 1;
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    #[cold]
    fn allocate(&mut self) {
        self.counts = vec![0; BUCKETS];
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value, 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest value, 0 when empty.
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// The sum of the values, saturating.
    pub fn sum(&self) -> u64 {
        self.sum.min(u128::from(u64::MAX)) as u64
    }

    /// The value below which a fraction `q` (0 to 1) of the values fall: the middle of the
    /// bucket holding the value of rank `ceil(q × count)`, clamped to the exact min and max.
    /// 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = bucket_range(bucket);
                let middle = low.saturating_add(width / 2);
                return middle.clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// p50, p90, p99, max and mean.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.count,
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            max: self.max,
            mean: if self.count == 0 {
                0
            } else {
                (self.sum / u128::from(self.count)) as u64
            },
        }
    }

    /// Counts in the coarse display buckets: below 10 µs, 10–100 µs, …, 100 ms–1 s, 1 s and more
    /// ([`DISPLAY_BOUNDS_NS`] gives the bounds; one more count than bounds). A bucket that
    /// straddles a bound counts on the side of its lower value.
    pub fn display_counts(&self) -> Vec<u64> {
        let mut out = vec![0u64; DISPLAY_BOUNDS_NS.len() + 1];
        for (bucket, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let (low, _) = bucket_range(bucket);
            let slot = DISPLAY_BOUNDS_NS.iter().take_while(|&&b| low >= b).count();
            out[slot] += n;
        }
        out
    }
}

/// The labels of the display buckets: `<10µs`, `10µs-100µs`, …, `>=1s`.
pub fn display_labels() -> Vec<String> {
    let short = format_duration_bound;
    let mut labels = vec![format!("<{}", short(DISPLAY_BOUNDS_NS[0]))];
    for pair in DISPLAY_BOUNDS_NS.windows(2) {
        labels.push(format!("{}-{}", short(pair[0]), short(pair[1])));
    }
    labels.push(format!(
        ">={}",
        short(DISPLAY_BOUNDS_NS[DISPLAY_BOUNDS_NS.len() - 1])
    ));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for value in (0..10_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let b = bucket_of(value);
            assert!(b < BUCKETS, "{value}");
            assert!(b >= last, "{value}");
            last = b;
            let (low, width) = bucket_range(b);
            assert!(
                low <= value && value - low < width,
                "{value} in {low}+{width}"
            );
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_the_bucket_error() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1_000);
        }
        let p = h.percentiles();
        assert_eq!(p.count, 1000);
        assert_eq!(p.max, 1_000_000);
        assert_eq!(p.mean, 500_500);
        for (got, want) in [(p.p50, 500_000f64), (p.p90, 900_000.0), (p.p99, 990_000.0)] {
            assert!((got as f64 - want).abs() / want < 0.035, "{got} vs {want}");
        }
    }

    #[test]
    fn one_value_is_exact_and_empty_is_zero() {
        let mut h = Histogram::new();
        assert_eq!(h.percentiles(), Percentiles::default());
        h.record(50_123_456);
        let p = h.percentiles();
        assert_eq!((p.p50, p.p99, p.max), (50_123_456, 50_123_456, 50_123_456));
    }

    #[test]
    fn display_buckets_split_by_decade() {
        let mut h = Histogram::new();
        for v in [
            5_000,
            50_000,
            500_000,
            5_000_000,
            50_000_000,
            500_000_000,
            5_000_000_000,
        ] {
            h.record(v);
        }
        assert_eq!(h.display_counts(), vec![1; 7]);
        assert_eq!(display_labels()[0], "<10µs");
        assert_eq!(display_labels()[6], ">=1s");
        let mut merged = Histogram::new();
        merged.merge(&h);
        merged.merge(&h);
        assert_eq!(merged.display_counts(), vec![2; 7]);
    }
}
