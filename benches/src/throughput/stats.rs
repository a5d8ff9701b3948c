//! Medians, ratios and number formatting for the throughput report.

/// The median of `values` (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// `a / b` when both are known and `b` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// `62,610` for a request rate.
pub fn fmt_rate(v: Option<f64>) -> String {
    let Some(v) = v else { return "-".into() };
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in microseconds as `812 µs`, `1.40 ms` or `2.10 s`.
pub fn fmt_latency(us: Option<f64>) -> String {
    match us {
        None => "-".into(),
        Some(us) if us < 1_000.0 => format!("{us:.0} µs"),
        Some(us) if us < 1_000_000.0 => format!("{:.2} ms", us / 1e3),
        Some(us) => format!("{:.2} s", us / 1e6),
    }
}

/// A per-request CPU time in microseconds: `9.9 µs` below 100 µs (tenths matter there),
/// else as [`fmt_latency`].
pub fn fmt_us(us: Option<f64>) -> String {
    match us {
        Some(us) if us < 100.0 => format!("{us:.1} µs"),
        other => fmt_latency(other),
    }
}

/// A ratio as `0.93×`.
pub fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}×"))
}

/// A share as `97%`.
pub fn fmt_percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.0}%", v * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 2.0]), Some(2.0));
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(Some(50.0), Some(100.0)), Some(0.5));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_rate(Some(62_610.43)), "62,610");
        assert_eq!(fmt_rate(Some(999.0)), "999");
        assert_eq!(fmt_rate(Some(1_000_000.0)), "1,000,000");
        assert_eq!(fmt_rate(None), "-");
        assert_eq!(fmt_latency(Some(812.0)), "812 µs");
        assert_eq!(fmt_latency(Some(1_400.0)), "1.40 ms");
        assert_eq!(fmt_latency(Some(2_100_000.0)), "2.10 s");
        assert_eq!(fmt_us(Some(9.94)), "9.9 µs");
        assert_eq!(fmt_us(Some(512.0)), "512 µs");
        assert_eq!(fmt_us(None), "-");
        assert_eq!(fmt_ratio(Some(0.934)), "0.93×");
        assert_eq!(fmt_percent(Some(0.974)), "97%");
    }
}
