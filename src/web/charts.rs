//! Small bar charts drawn on the server as inline SVG: the projects page's sparklines, the
//! issue list's frequency column and the issue page's 24-hour and 30-day charts. Only numbers
//! go into the markup, never text from events.

use std::fmt::Write as _;

/// Bars for `counts` (oldest first), `width` × `height` pixels, with a title for the total.
pub fn bars(counts: &[u64], width: u32, height: u32, class: &str) -> String {
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let n = counts.len().max(1) as f64;
    let slot = f64::from(width) / n;
    let bar = (slot - 1.0).max(1.0);
    let total: u64 = counts.iter().sum();
    let mut svg = format!(
        "<svg class=\"{class}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\"><title>{total} events</title>"
    );
    for (i, &c) in counts.iter().enumerate() {
        let h = if c == 0 {
            0.0
        } else {
            (c as f64 / max as f64 * f64::from(height)).max(1.0)
        };
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{c}</title></rect>",
            i as f64 * slot,
            f64::from(height) - h,
            bar,
            h
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Per-hour counts for the `hours` hours up to `now_hour` (inclusive), from sparse
/// (hour, count) pairs.
pub fn hourly(points: &[(u64, u64)], now_hour: u64, hours: u64) -> Vec<u64> {
    let start = now_hour + 1 - hours.min(now_hour + 1);
    let mut out = vec![0; (now_hour + 1 - start) as usize];
    for &(hour, n) in points {
        if (start..=now_hour).contains(&hour) {
            out[(hour - start) as usize] += n;
        }
    }
    out
}

/// Per-day counts for the last `days` days from hourly pairs.
pub fn daily(points: &[(u64, u64)], now_hour: u64, days: u64) -> Vec<u64> {
    let today = now_hour / 24;
    let start = today + 1 - days.min(today + 1);
    let mut out = vec![0; (today + 1 - start) as usize];
    for &(hour, n) in points {
        let day = hour / 24;
        if (start..=today).contains(&day) {
            out[(day - start) as usize] += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_bars() {
        assert_eq!(hourly(&[(10, 2), (12, 5), (3, 9)], 12, 3), vec![2, 0, 5]);
        assert_eq!(daily(&[(0, 1), (25, 2), (47, 3)], 47, 2), vec![1, 5]);
        let svg = bars(&[0, 1, 4], 30, 10, "spark");
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("<title>5 events</title>"));
    }
}
