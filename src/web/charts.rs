//! Bar charts drawn on the server as inline SVG: the sparklines of the projects page and the
//! issue list, and the charts with axes and time labels of the issue page and the projects
//! page over a chosen range. Only numbers and times go into the markup, never text from
//! events.

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

/// A range a chart can show: its name, its label, how many buckets of how many hours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub name: &'static str,
    pub label: &'static str,
    pub buckets: u64,
    pub hours_per_bucket: u64,
}

/// The ranges to choose from; the second is the default.
pub const RANGES: [Range; 5] = [
    Range {
        name: "1h",
        label: "1 hour",
        buckets: 12,
        hours_per_bucket: 0,
    },
    Range {
        name: "24h",
        label: "24 hours",
        buckets: 24,
        hours_per_bucket: 1,
    },
    Range {
        name: "7d",
        label: "7 days",
        buckets: 42,
        hours_per_bucket: 4,
    },
    Range {
        name: "30d",
        label: "30 days",
        buckets: 30,
        hours_per_bucket: 24,
    },
    Range {
        name: "90d",
        label: "90 days",
        buckets: 90,
        hours_per_bucket: 24,
    },
];

impl Range {
    /// The range named, else the default (24 hours).
    pub fn named(name: &str) -> Range {
        RANGES
            .iter()
            .find(|r| r.name == name)
            .copied()
            .unwrap_or(RANGES[1])
    }

    /// Seconds one bucket covers (five minutes for the hour range).
    pub fn bucket_secs(&self) -> u64 {
        if self.hours_per_bucket == 0 {
            300
        } else {
            self.hours_per_bucket * 3600
        }
    }

    /// The first hour the range covers, ending with `now_hour`.
    pub fn first_hour(&self, now_hour: u64) -> u64 {
        let span = (self.buckets * self.bucket_secs()).div_ceil(3600);
        (now_hour + 1).saturating_sub(span)
    }

    /// Counts per bucket from hourly pairs, the last bucket ending with `now_hour`.
    pub fn bucket_hours(&self, points: &[(u64, u64)], now_hour: u64) -> Vec<u64> {
        let per = self.hours_per_bucket.max(1);
        let first = (now_hour + 1).saturating_sub(self.buckets * per);
        let mut out = vec![0; self.buckets as usize];
        for &(hour, n) in points {
            if (first..=now_hour).contains(&hour) {
                out[((hour - first) / per) as usize] += n;
            }
        }
        out
    }

    /// Counts per five-minute bucket of the last hour from event times (Unix seconds).
    pub fn bucket_times(&self, times: &[f64], now: f64) -> Vec<u64> {
        let secs = self.bucket_secs() as f64;
        let start = now - secs * self.buckets as f64;
        let mut out = vec![0; self.buckets as usize];
        for &t in times {
            if t >= start && t <= now {
                let i = (((t - start) / secs) as usize).min(out.len() - 1);
                out[i] += 1;
            }
        }
        out
    }

    /// When the first bucket starts (Unix seconds), for a chart ending now.
    pub fn start(&self, now: f64) -> f64 {
        if self.hours_per_bucket == 0 {
            now - (self.buckets * self.bucket_secs()) as f64
        } else {
            let now_hour = (now / 3600.0) as u64;
            ((now_hour + 1).saturating_sub(self.buckets * self.hours_per_bucket) * 3600) as f64
        }
    }
}

/// A chart of `counts` per bucket of `bucket_secs` from `start` (Unix seconds, UTC), with a
/// count axis, time labels and a title per bar; it scales to the width of its card.
pub fn timeline(counts: &[u64], start: f64, bucket_secs: u64) -> String {
    const W: f64 = 640.0;
    const H: f64 = 170.0;
    const LEFT: f64 = 44.0;
    const BOTTOM: f64 = 22.0;
    const TOP: f64 = 8.0;
    let plot_w = W - LEFT - 6.0;
    let plot_h = H - BOTTOM - TOP;
    let max = counts.iter().copied().max().unwrap_or(0);
    let scale = nice_max(max);
    let n = counts.len().max(1) as f64;
    let slot = plot_w / n;
    let total: u64 = counts.iter().sum();
    let mut svg = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {W} {H}\" role=\"img\"><title>{total} events</title>"
    );
    // The count axis: zero, half and the top, with grid lines.
    for (value, frac) in [(0, 0.0), (scale / 2, 0.5), (scale, 1.0)] {
        let y = TOP + plot_h * (1.0 - frac);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{value}</text>",
            W - 6.0,
            LEFT - 4.0,
            y + 4.0
        );
    }
    for (i, &c) in counts.iter().enumerate() {
        let h = if c == 0 {
            0.0
        } else {
            (c as f64 / scale as f64 * plot_h).max(1.0)
        };
        let at = start + (i as u64 * bucket_secs) as f64;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{c} · {}</title></rect>",
            LEFT + i as f64 * slot + 0.5,
            TOP + plot_h - h,
            (slot - 1.0).max(0.5),
            label(at, bucket_secs, true)
        );
    }
    // Time labels under about six evenly spaced buckets.
    let every = (counts.len() / 6).max(1);
    for i in (0..counts.len()).step_by(every) {
        let at = start + (i as u64 * bucket_secs) as f64;
        let _ = write!(
            svg,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LEFT + i as f64 * slot,
            H - 6.0,
            label(at, bucket_secs, false)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A round number at or above `max` for the top of the count axis.
fn nice_max(max: u64) -> u64 {
    if max <= 4 {
        return 4;
    }
    let magnitude = 10u64.pow((max as f64).log10().floor() as u32);
    for step in [1, 2, 5, 10] {
        let top = step * magnitude;
        if top >= max {
            return top;
        }
    }
    10 * magnitude
}

/// A bucket's time in UTC: `HH:MM` for buckets under a day (with the date in full titles),
/// `MM-DD` for days.
fn label(at: f64, bucket_secs: u64, full: bool) -> String {
    let stamp = crate::time::rfc3339(at);
    let date = stamp.get(5..10).unwrap_or("");
    let time = stamp.get(11..16).unwrap_or("");
    match (bucket_secs >= 86_400, full) {
        (true, _) => date.to_string(),
        (false, true) => format!("{date} {time} UTC"),
        (false, false) => time.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_bars() {
        assert_eq!(hourly(&[(10, 2), (12, 5), (3, 9)], 12, 3), vec![2, 0, 5]);
        let svg = bars(&[0, 1, 4], 30, 10, "spark");
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("<title>5 events</title>"));
    }

    #[test]
    fn ranges_bucket_hours_and_times() {
        let week = Range::named("7d");
        let counts = week.bucket_hours(&[(1000, 2), (1001, 3), (999, 7), (1003, 1)], 1003);
        assert_eq!(counts.len(), 42);
        // 1000..=1003 is the last four-hour bucket.
        assert_eq!(counts[41], 6);
        assert_eq!(counts[40], 7);
        let hour = Range::named("1h");
        let now = 10_000.0;
        let c = hour.bucket_times(&[now - 10.0, now - 290.0, now - 310.0, now - 4000.0], now);
        assert_eq!(
            (c.len(), c[11], c[10], c.iter().sum::<u64>()),
            (12, 2, 1, 3)
        );
        assert_eq!(Range::named("nonsense"), RANGES[1]);
    }

    #[test]
    fn a_timeline_has_axes_and_labels() {
        let svg = timeline(&[0, 3, 7], 86_400.0 * 365.0, 3600);
        assert!(svg.contains(">10</text>"), "{svg}");
        assert!(svg.contains(">5</text>") && svg.contains(">0</text>"));
        assert!(svg.contains(">01:00</text>"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
        assert_eq!(nice_max(0), 4);
        assert_eq!(nice_max(44), 50);
        assert_eq!(nice_max(101), 200);
    }
}
