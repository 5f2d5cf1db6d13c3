//! Hand-written SVG: horizontal bars with p10–p90 whiskers, optionally
//! split into stacked segments.

use std::fmt::Write as _;

/// One row of a chart: a header when `segments` is empty.
pub struct Row {
    pub label: String,
    /// Stacked parts (legend index, value); their sum is the bar's length.
    pub segments: Vec<(usize, f64)>,
    /// Whisker (p10, p90), drawn over the bar.
    pub whisker: Option<(f64, f64)>,
    /// Text right of the row.
    pub note: String,
}

impl Row {
    pub fn header(label: &str) -> Row {
        Row {
            label: label.to_string(),
            segments: vec![],
            whisker: None,
            note: String::new(),
        }
    }

    pub fn bar(label: &str, p10: f64, p50: f64, p90: f64, note: String) -> Row {
        Row {
            label: label.to_string(),
            segments: vec![(0, p50)],
            whisker: Some((p10, p90)),
            note,
        }
    }
}

const COLORS: [&str; 4] = ["#4C78A8", "#F58518", "#54A24B", "#B279A2"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A tick step of 1, 2 or 5 × 10^k giving about five ticks up to `max`.
fn tick_step(max: f64) -> f64 {
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}

/// A horizontal bar chart; `legend` names the segment kinds.
pub fn bars(title: &str, subtitle: &str, unit: &str, legend: &[&str], rows: &[Row]) -> String {
    let (left, plot_w, right) = (330.0, 420.0, 150.0);
    let row_h = 24.0;
    let top = 58.0
        + if legend.len() > 1 {
            18.0 * legend.len() as f64
        } else {
            0.0
        };
    let height = top + rows.len() as f64 * row_h + 40.0;
    let width = left + plot_w + right;
    let max = rows
        .iter()
        .map(|r| {
            let sum: f64 = r.segments.iter().map(|s| s.1.max(0.0)).sum();
            r.whisker.map_or(sum, |w| w.1.max(sum))
        })
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-9);
    let step = tick_step(max);
    let axis_max = (max / step).ceil() * step;
    let x = |v: f64| left + (v.max(0.0) / axis_max) * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">{}</text>
<text x="10" y="42" fill="#555">{}</text>"##,
        esc(title),
        esc(subtitle)
    );
    if legend.len() > 1 {
        for (i, name) in legend.iter().enumerate() {
            let ly = 52.0 + 18.0 * i as f64;
            let _ = writeln!(
                s,
                r##"<rect x="10" y="{ly}" width="12" height="12" fill="{}"/><text x="28" y="{}">{}</text>"##,
                COLORS[i % COLORS.len()],
                ly + 10.0,
                esc(name)
            );
        }
    }
    let bottom = top + rows.len() as f64 * row_h;
    let mut t = 0.0;
    while t <= axis_max + step / 2.0 {
        let tx = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{tx}" y1="{top}" x2="{tx}" y2="{bottom}" stroke="#ddd"/><text x="{tx}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            bottom + 16.0,
            fmt_tick(t)
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
        left + plot_w / 2.0,
        bottom + 32.0,
        esc(unit)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let mid = y + row_h / 2.0;
        if r.segments.is_empty() {
            let _ = writeln!(
                s,
                r##"<text x="10" y="{}" font-weight="bold">{}</text>"##,
                mid + 4.0,
                esc(&r.label)
            );
            continue;
        }
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text>"##,
            left - 8.0,
            mid + 4.0,
            esc(&r.label)
        );
        let mut at = 0.0;
        for (kind, v) in &r.segments {
            if !v.is_finite() || *v <= 0.0 {
                continue;
            }
            let (x0, x1) = (x(at), x(at + v));
            let _ = writeln!(
                s,
                r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"##,
                y + 4.0,
                (x1 - x0).max(0.5),
                row_h - 8.0,
                COLORS[kind % COLORS.len()]
            );
            at += v;
        }
        if let Some((lo, hi)) = r.whisker.filter(|w| w.0.is_finite() && w.1.is_finite()) {
            let (a, b) = (x(lo), x(hi));
            let _ = writeln!(
                s,
                r##"<line x1="{a:.1}" y1="{mid}" x2="{b:.1}" y2="{mid}" stroke="black"/><line x1="{a:.1}" y1="{}" x2="{a:.1}" y2="{}" stroke="black"/><line x1="{b:.1}" y1="{}" x2="{b:.1}" y2="{}" stroke="black"/>"##,
                mid - 5.0,
                mid + 5.0,
                mid - 5.0,
                mid + 5.0
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}">{}</text>"##,
            left + plot_w + 8.0,
            mid + 4.0,
            esc(&r.note)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 || v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
