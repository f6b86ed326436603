//! A small SVG line-chart writer: enough for the latency percentile
//! spectrum (log x axis of 1/(1-percentile), as HdrHistogram's plotter
//! draws it) and for rates and p99 over time.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

const W: f64 = 800.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"];
/// Points per series are capped so a long run still gives a small file.
const POINTS_MAX: usize = 2000;

/// (1/(1-q), ms) pairs of a histogram's percentile spectrum.
pub fn spectrum_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        if q >= 1.0 {
            break;
        }
        out.push((
            1.0 / (1.0 - q),
            h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
        ));
    }
    // The maximum sits at percentile 1 - 1/count.
    let last_x = out.last().map_or(1.0, |p| p.0);
    out.push((last_x.max(h.len() as f64), h.max() as f64 / 1000.0));
    out
}

pub fn spectrum_chart(series: &[(&str, Vec<(f64, f64)>)]) -> String {
    line_chart("Latency by percentile", "percentile", "ms", series, true)
}

fn nice_step(range: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    mag * if n < 1.5 {
        1.0
    } else if n < 3.5 {
        2.0
    } else if n < 7.5 {
        5.0
    } else {
        10.0
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.abs() >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Percentile label for 1/(1-q) = 10^k: 0, 90, 99, 99.9 ...
fn percentile_label(k: i32) -> String {
    if k == 0 {
        return "0%".into();
    }
    let q = 100.0 * (1.0 - 10f64.powi(-k));
    let s = format!("{q:.*}", (k - 2).max(0) as usize);
    format!("{s}%")
}

pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    x_log: bool,
) -> String {
    let tx = |x: f64| if x_log { x.max(1.0).log10() } else { x };
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in pts {
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(tx(x));
            x1 = x1.max(tx(x));
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x_log {
        x0 = 0.0;
        x1 = x1.ceil().max(1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let ystep = nice_step(y1);
    let ymax = ((y1 / ystep).ceil() * ystep).max(ystep);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + (tx(x) - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (y / ymax) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"16\">{}</text>",
        W / 2.0,
        xml(title)
    );
    // Y grid.
    let mut y = 0.0;
    while y <= ymax + ystep / 2.0 {
        let yy = py(y);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            fmt_num(y)
        );
        y += ystep;
    }
    // X grid.
    if x_log {
        for k in 0..=(x1 as i32) {
            let xx = LEFT + (f64::from(k) - x0) / (x1 - x0) * pw;
            let _ = writeln!(
                s,
                "<line x1=\"{xx:.1}\" y1=\"{TOP}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                TOP + ph,
                TOP + ph + 16.0,
                percentile_label(k)
            );
        }
    } else {
        let xstep = nice_step(x1 - x0);
        let mut x = (x0 / xstep).ceil() * xstep;
        while x <= x1 {
            let xx = px(x);
            let _ = writeln!(
                s,
                "<line x1=\"{xx:.1}\" y1=\"{TOP}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                TOP + ph,
                TOP + ph + 16.0,
                fmt_num(x)
            );
            x += xstep;
        }
    }
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">{}</text>",
        LEFT + pw / 2.0,
        H - 16.0,
        xml(x_label),
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        xml(y_label)
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let stride = points.len().div_ceil(POINTS_MAX).max(1);
        let path: Vec<String> = points
            .iter()
            .step_by(stride)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        if !path.is_empty() {
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            );
        }
        let ly = TOP + 16.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LEFT + 10.0,
            LEFT + 30.0,
            LEFT + 36.0,
            ly + 4.0,
            xml(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_is_wellformed_and_scaled() {
        let svg = line_chart(
            "t<1>",
            "x",
            "y",
            &[("a", vec![(0.0, 0.0), (10.0, 5.0)]), ("b", vec![])],
            false,
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t&lt;1&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        // The last point sits on the right edge and at the top of the y range.
        assert!(svg.contains(&format!("{:.1},{:.1}", W - RIGHT, TOP)));
    }

    #[test]
    fn spectrum_covers_the_tail() {
        let mut h = crate::stats::new_histogram();
        for v in 1..=100_000u64 {
            h.record(v).unwrap();
        }
        let p = spectrum_points(&h);
        assert!(p.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert!(p.last().unwrap().0 >= 1e5);
        assert_eq!(percentile_label(3), "99.9%");
        assert_eq!(percentile_label(1), "90%");
        let svg = spectrum_chart(&[("publish", p)]);
        assert!(svg.contains("99.99%"));
    }
}
