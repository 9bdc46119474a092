//! Sizes and durations for people: the one place that formats them, for the summary, the
//! reports, the command line and the recorder.
//!
//! - sizes in binary units with one decimal: `532 B`, `1.5 KiB`, `48.2 KiB`, `9.8 MiB`
//!   ([`format_size`]);
//! - durations in the largest unit below them with three decimals: `950ns`, `12.345µs`,
//!   `1.500ms`, `10.000s` ([`format_duration`]); round bounds (a histogram's buckets) in whole
//!   units: `10µs`, `100ms`, `1s` ([`format_duration_bound`]).

/// A size for people, in binary units with one decimal: `532 B`, `1.5 KiB`, `9.8 MiB`,
/// `4.0 GiB`.
pub fn format_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    for unit in ["KiB", "MiB", "GiB"] {
        if value < 1024.0 {
            return format!("{value:.1} {unit}");
        }
        value /= 1024.0;
    }
    format!("{value:.1} TiB")
}

/// A duration for people: `950ns`, `12.345µs`, `1.500ms`, `10.000s`.
pub fn format_duration(ns: u64) -> String {
    let ns_f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.3}µs", ns_f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.3}ms", ns_f / 1e6)
    } else {
        format!("{:.3}s", ns_f / 1e9)
    }
}

/// A round duration (a bound of a histogram's buckets) in whole units of its size: `10µs`,
/// `100ms`, `1s` (the fraction is dropped).
pub fn format_duration_bound(ns: u64) -> String {
    match ns {
        n if n >= 1_000_000_000 => format!("{}s", n / 1_000_000_000),
        n if n >= 1_000_000 => format!("{}ms", n / 1_000_000),
        n => format!("{}µs", n / 1_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units_with_one_decimal() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(532), "532 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(49_356), "48.2 KiB");
        assert_eq!(format_size(10 << 20), "10.0 MiB");
        assert_eq!(format_size(4 << 30), "4.0 GiB");
        assert_eq!(format_size(3 << 40), "3.0 TiB");
    }

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(format_duration(0), "0ns");
        assert_eq!(format_duration(999), "999ns");
        assert_eq!(format_duration(12_345), "12.345µs");
        assert_eq!(format_duration(1_500_000), "1.500ms");
        assert_eq!(format_duration(10_000_000_000), "10.000s");
    }

    #[test]
    fn bounds_are_whole_units() {
        assert_eq!(format_duration_bound(10_000), "10µs");
        assert_eq!(format_duration_bound(100_000_000), "100ms");
        assert_eq!(format_duration_bound(1_000_000_000), "1s");
    }
}
