//! `smc-analyze plot --out DIR`: the analysis as SVG charts (plotters, SVG
//! backend only, to keep the build small), each readable on its own: title,
//! axis labels with units, legend. The same SVG strings are inlined by the
//! HTML report ([`crate::html`]).
//!
//! Charts: per-stage latency CDF (log time axis), chain-stage breakdown at
//! p50/p99 per connection (stacked bars), latency over time per connection
//! (slow messages highlighted), handshake waterfall.

use std::collections::BTreeMap;

use plotters::prelude::*;

use crate::join::{Analysis, Message, STAGES};
use crate::report::Report;
use crate::stats::quantile;

/// Messages kept for the charts: the report's selection of complete ones,
/// plus incomplete ones for the time chart.
pub struct Collector {
    pub report: crate::report::ReportSink,
    pub messages: Vec<Message>,
}

impl crate::join::Sink for Collector {
    fn begin(&mut self, a: &Analysis) {
        self.report.begin(a);
    }

    fn message(&mut self, a: &Analysis, m: Message) {
        if self.report.selected(a, &m) {
            self.messages.push(m.clone());
        }
        self.report.message(a, m);
    }
}

/// One chart: file name, title and the SVG text.
pub struct Chart {
    pub file: &'static str,
    pub title: String,
    pub svg: String,
}

const W: u32 = 960;
/// Colors per chain stage (colour-blind safe, Okabe-Ito) and for the rest.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(190, 170, 0),
    RGBColor(0, 0, 0),
    RGBColor(120, 120, 120),
    RGBColor(150, 60, 200),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn e<E: std::fmt::Debug>(what: &str) -> impl Fn(E) -> String + '_ {
    move |err| format!("drawing the {what} chart failed: {err:?}")
}

/// Microseconds for axes.
fn us(ns: i64) -> f64 {
    ns as f64 / 1e3
}

fn us_label(v: &f64) -> String {
    if *v == 0.0 {
        "0".into()
    } else if *v >= 1e6 {
        format!("{}s", v / 1e6)
    } else if *v >= 1e3 {
        format!("{}ms", v / 1e3)
    } else {
        format!("{v}us")
    }
}

fn log_bounds(lo: f64, hi: f64) -> (f64, f64) {
    let lo = 10f64.powf(lo.max(0.01).log10().floor());
    let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
    (lo, hi)
}

/// Per-stage latency CDF over complete messages.
pub fn cdf(msgs: &[Message]) -> Result<Chart, String> {
    let title = "Stage latency CDF (complete messages)".to_string();
    let mut series: Vec<(usize, Vec<i64>)> = Vec::new();
    for (k, _) in STAGES.iter().enumerate() {
        let mut v: Vec<i64> = msgs
            .iter()
            .filter(|m| !m.incomplete())
            .filter_map(|m| m.stages[k])
            .filter(|&d| d > 0)
            .collect();
        if !v.is_empty() {
            v.sort_unstable();
            series.push((k, v));
        }
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(e("CDF"))?;
        if series.is_empty() {
            root.draw(&Text::new(
                "no complete messages: nothing to plot",
                (40, 260),
                ("sans-serif", 20),
            ))
            .map_err(e("CDF"))?;
        } else {
            let lo = series
                .iter()
                .map(|(_, v)| us(v[0]))
                .fold(f64::MAX, f64::min);
            let hi = series
                .iter()
                .map(|(_, v)| us(*v.last().unwrap_or(&1)))
                .fold(0.0, f64::max);
            let (lo, hi) = log_bounds(lo, hi);
            let mut ch = ChartBuilder::on(&root)
                .caption(&title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)
                .map_err(e("CDF"))?;
            ch.configure_mesh()
                .x_desc("stage duration (log scale)")
                .y_desc("fraction of messages ≤ duration")
                .x_label_formatter(&us_label)
                .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
                .draw()
                .map_err(e("CDF"))?;
            for (k, v) in &series {
                let n = v.len() as f64;
                // At most ~400 points per curve: the quantile at each step.
                let steps = v.len().min(400);
                let pts: Vec<(f64, f64)> = (1..=steps)
                    .map(|i| {
                        let q = i as f64 / steps as f64;
                        (us(quantile(v, q)).max(lo), q)
                    })
                    .collect();
                let c = color(*k);
                let st = STAGES[*k].name;
                ch.draw_series(LineSeries::new(pts, c.stroke_width(2)))
                    .map_err(e("CDF"))?
                    .label(format!(
                        "{st} (n={}, p50 {})",
                        n,
                        crate::duration::fmt(quantile(v, 0.5))
                    ))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                    });
            }
            ch.configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(e("CDF"))?;
        }
        root.present().map_err(e("CDF"))?;
    }
    Ok(Chart {
        file: "stage-cdf.svg",
        title,
        svg,
    })
}

/// Chain stages stacked at p50 and p99 of each stage, per connection.
pub fn breakdown(msgs: &[Message], r: &Report, a: &Analysis) -> Result<Chart, String> {
    let title = "Where the time goes: chain stages at p50 and p99 per connection".to_string();
    let chain: Vec<usize> = (0..STAGES.len()).filter(|&k| STAGES[k].chain).collect();
    // rows: (label, [(stage k, ns)])
    let mut rows: Vec<(String, Vec<(usize, i64)>)> = Vec::new();
    let mut by_conn: BTreeMap<u32, Vec<&Message>> = BTreeMap::new();
    for m in msgs.iter().filter(|m| !m.incomplete()) {
        by_conn.entry(a.conns[m.conn].id).or_default().push(m);
    }
    let with_msgs = r
        .connections
        .iter()
        .filter(|c| by_conn.contains_key(&c.id))
        .count();
    let shown: Vec<u32> = r
        .connections
        .iter()
        .map(|c| c.id)
        .filter(|id| by_conn.contains_key(id))
        .take(12)
        .collect();
    let title = if with_msgs > shown.len() {
        format!("{title} (first {} of {with_msgs})", shown.len())
    } else {
        title
    };
    for id in &shown {
        let ms = &by_conn[id];
        for (q, qn) in [(0.5, "p50"), (0.99, "p99")] {
            let segs: Vec<(usize, i64)> = chain
                .iter()
                .map(|&k| {
                    let mut v: Vec<i64> = ms.iter().filter_map(|m| m.stages[k]).collect();
                    v.sort_unstable();
                    (k, if v.is_empty() { 0 } else { quantile(&v, q) })
                })
                .collect();
            rows.push((format!("conn {id} {qn}"), segs));
        }
    }
    let mut svg = String::new();
    {
        let h = (150 + 45 * rows.len() as u32).max(340);
        let root = SVGBackend::with_string(&mut svg, (W, h)).into_drawing_area();
        root.fill(&WHITE).map_err(e("breakdown"))?;
        if rows.is_empty() {
            root.draw(&Text::new(
                "no complete messages: nothing to plot",
                (40, 60),
                ("sans-serif", 20),
            ))
            .map_err(e("breakdown"))?;
        } else {
            let max = rows
                .iter()
                .map(|(_, s)| s.iter().map(|(_, v)| us(*v)).sum::<f64>())
                .fold(0.0, f64::max)
                .max(1e-3);
            let n = rows.len() as f64;
            let labels: Vec<String> = rows.iter().map(|(l, _)| l.clone()).collect();
            let mut ch = ChartBuilder::on(&root)
                .caption(&title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(110)
                .build_cartesian_2d(0f64..max * 1.35, -0.5f64..n - 0.5)
                .map_err(e("breakdown"))?;
            ch.configure_mesh()
                .disable_y_mesh()
                .x_desc("time, each stage at its own quantile (stacked)")
                .x_label_formatter(&us_label)
                .y_labels(rows.len())
                .y_label_formatter(&|y| row_label(&labels, *y))
                .draw()
                .map_err(e("breakdown"))?;
            for (pos, &k) in chain.iter().enumerate() {
                let c = color(k);
                let rects: Vec<Rectangle<(f64, f64)>> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, (_, segs))| {
                        let y = n - 1.0 - i as f64;
                        let x0: f64 = segs[..pos].iter().map(|(_, v)| us(*v)).sum();
                        let x1 = x0 + us(segs[pos].1);
                        Rectangle::new([(x0, y - 0.35), (x1, y + 0.35)], c.filled())
                    })
                    .collect();
                ch.draw_series(rects)
                    .map_err(e("breakdown"))?
                    .label(STAGES[k].name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled())
                    });
            }
            ch.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(e("breakdown"))?;
        }
        root.present().map_err(e("breakdown"))?;
    }
    Ok(Chart {
        file: "stage-breakdown.svg",
        title,
        svg,
    })
}

/// Latency of every message over time, per connection; messages at or over
/// `slow_ns` (default: the p99 of all latencies) are drawn as red crosses.
pub fn over_time(msgs: &[Message], a: &Analysis, slow_ns: Option<u64>) -> Result<Chart, String> {
    let ms: Vec<&Message> = msgs
        .iter()
        .filter(|m| m.first_point().is_some() && m.latency() > 0)
        .collect();
    let mut all: Vec<i64> = ms.iter().map(|m| m.latency()).collect();
    all.sort_unstable();
    let thr = slow_ns
        .map(|s| s as i64)
        .unwrap_or_else(|| quantile(&all, 0.99));
    let title = format!(
        "Message latency over time (slow: ≥ {}, red crosses)",
        crate::duration::fmt(thr)
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(e("latency-over-time"))?;
        if ms.is_empty() {
            root.draw(&Text::new(
                "no messages: nothing to plot",
                (40, 260),
                ("sans-serif", 20),
            ))
            .map_err(e("latency-over-time"))?;
        } else {
            let t = |m: &Message| (m.first_point().unwrap_or(a.t0) - a.t0) as f64 / 1e9;
            let tmax = ms.iter().map(|m| t(m)).fold(0.0, f64::max).max(1e-3);
            let (lo, hi) = log_bounds(us(all[0].max(1)), us(*all.last().unwrap_or(&1)));
            // One decade of headroom keeps the legend off the points.
            let hi = hi * 10.0;
            let mut ch = ChartBuilder::on(&root)
                .caption(&title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..tmax * 1.02, (lo..hi).log_scale())
                .map_err(e("latency-over-time"))?;
            ch.configure_mesh()
                .x_desc("time since the report start (s)")
                .y_desc("latency: e2e, or the local span if a side is missing (log)")
                .y_label_formatter(&us_label)
                .draw()
                .map_err(e("latency-over-time"))?;
            let mut conns: BTreeMap<u32, Vec<&Message>> = BTreeMap::new();
            for m in &ms {
                conns.entry(a.conns[m.conn].id).or_default().push(m);
            }
            let many = conns.len() > 8;
            for (i, (id, v)) in conns.iter().enumerate() {
                let c = if many { color(i % 8) } else { color(i) };
                let s = ch
                    .draw_series(
                        v.iter()
                            .filter(|m| m.latency() < thr)
                            .map(|m| Circle::new((t(m), us(m.latency())), 2, c.mix(0.6).filled())),
                    )
                    .map_err(e("latency-over-time"))?;
                if i < 8 {
                    s.label(format!(
                        "conn {id} ({} msgs{})",
                        v.len(),
                        if v[0].stages[crate::join::E2E].is_some() {
                            ""
                        } else {
                            ", local span"
                        }
                    ))
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
                }
            }
            if conns.len() > 8 {
                ch.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                    .map_err(e("latency-over-time"))?
                    .label(format!(
                        "+ {} more connections (colours repeat)",
                        conns.len() - 8
                    ))
                    .legend(|(x, y)| PathElement::new(vec![(x, y)], WHITE));
            }
            let slow: Vec<&&Message> = ms.iter().filter(|m| m.latency() >= thr).collect();
            let n_slow = slow.len();
            ch.draw_series(
                slow.into_iter()
                    .map(|m| Cross::new((t(m), us(m.latency())), 5, RED.stroke_width(2))),
            )
            .map_err(e("latency-over-time"))?
            .label(format!("slow (≥ {}): {n_slow}", crate::duration::fmt(thr)))
            .legend(|(x, y)| Cross::new((x + 8, y), 5, RED.stroke_width(2)));
            ch.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(e("latency-over-time"))?;
        }
        root.present().map_err(e("latency-over-time"))?;
    }
    Ok(Chart {
        file: "latency-over-time.svg",
        title,
        svg,
    })
}

/// Handshake steps per connection, as bars from connect to each step.
pub fn waterfall(r: &Report) -> Result<Chart, String> {
    let title = "Handshake waterfall (time from connect to each CLC step)".to_string();
    let all_hs = r
        .connections
        .iter()
        .filter(|c| c.handshake.is_some())
        .count();
    let hs: Vec<(u32, &crate::report::HandshakeReport)> = r
        .connections
        .iter()
        .filter_map(|c| c.handshake.as_ref().map(|h| (c.id, h)))
        .take(30)
        .collect();
    let title = if all_hs > hs.len() {
        format!("{title} (first {} of {all_hs})", hs.len())
    } else {
        title
    };
    // Step names in order of first appearance, for colours and the legend.
    let mut names: Vec<String> = Vec::new();
    for (_, h) in &hs {
        for s in &h.steps {
            if !names.contains(&s.event) {
                names.push(s.event.clone());
            }
        }
    }
    let mut svg = String::new();
    {
        let h = (150 + 32 * hs.len() as u32).max(300);
        let root = SVGBackend::with_string(&mut svg, (W, h)).into_drawing_area();
        root.fill(&WHITE).map_err(e("handshake"))?;
        if hs.is_empty() {
            root.draw(&Text::new(
                "no handshakes in the recordings",
                (40, 60),
                ("sans-serif", 20),
            ))
            .map_err(e("handshake"))?;
        } else {
            let max = hs
                .iter()
                .flat_map(|(_, h)| h.steps.iter().map(|s| us(s.at_ns)))
                .fold(0.0, f64::max)
                .max(1e-3);
            let n = hs.len() as f64;
            let labels: Vec<String> = hs
                .iter()
                .map(|(id, h)| format!("conn {id} ({:?})", h.side).to_lowercase())
                .collect();
            let mut ch = ChartBuilder::on(&root)
                .caption(&title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(120)
                .build_cartesian_2d(0f64..max * 1.45, -0.5f64..n - 0.5)
                .map_err(e("handshake"))?;
            ch.configure_mesh()
                .disable_y_mesh()
                .x_desc("time since connect (or the first CLC message on a server)")
                .x_label_formatter(&us_label)
                .y_labels(hs.len())
                .y_label_formatter(&|y| row_label(&labels, *y))
                .draw()
                .map_err(e("handshake"))?;
            for (ni, name) in names.iter().enumerate() {
                let c = color(ni);
                let rects: Vec<Rectangle<(f64, f64)>> = hs
                    .iter()
                    .enumerate()
                    .flat_map(|(i, (_, h))| {
                        let y = n - 1.0 - i as f64;
                        h.steps
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| &s.event == name)
                            .map(move |(si, s)| {
                                let x0 = if si == 0 {
                                    0.0
                                } else {
                                    us(h.steps[si - 1].at_ns)
                                };
                                // A zero-length step still gets a visible tick.
                                let x1 = us(s.at_ns).max(x0 + max * 0.004);
                                Rectangle::new([(x0, y - 0.32), (x1, y + 0.32)], c.filled())
                            })
                    })
                    .collect();
                ch.draw_series(rects)
                    .map_err(e("handshake"))?
                    .label(format!("… → {name}"))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled())
                    });
            }
            ch.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(e("handshake"))?;
        }
        root.present().map_err(e("handshake"))?;
    }
    Ok(Chart {
        file: "handshake-waterfall.svg",
        title,
        svg,
    })
}

/// Every chart, in the order the HTML report shows them.
pub fn all(
    msgs: &[Message],
    r: &Report,
    a: &Analysis,
    slow_ns: Option<u64>,
) -> Result<Vec<Chart>, String> {
    Ok(vec![
        cdf(msgs)?,
        breakdown(msgs, r, a)?,
        over_time(msgs, a, slow_ns)?,
        waterfall(r)?,
    ])
}

/// Write the charts as `DIR/<name>.svg`; returns the paths.
pub fn write(dir: &std::path::Path, charts: &[Chart]) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
    let mut out = Vec::new();
    for c in charts {
        let p = dir.join(c.file);
        std::fs::write(&p, &c.svg).map_err(|e| format!("{}: write failed: {e}", p.display()))?;
        out.push(p.display().to_string());
    }
    Ok(out)
}

/// The label of a horizontal-bar chart's row at y (rows are drawn top-down, one per
/// integer y); nothing between rows.
fn row_label(labels: &[String], y: f64) -> String {
    let i = y.round();
    if (y - i).abs() < 0.01 && i >= 0.0 && (i as usize) < labels.len() {
        labels[labels.len() - 1 - i as usize].clone()
    } else {
        String::new()
    }
}
