//! `smc-analyze html OUT.html`: one self-contained file (no scripts, no
//! external resources) with the report's tables and the charts of
//! [`crate::plot`] inlined as SVG, for attaching to a bug report.

use std::fmt::Write as _;

use crate::duration::fmt;
use crate::plot::Chart;
use crate::report::Report;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn opt(v: Option<i64>) -> String {
    v.map(fmt).unwrap_or_else(|| "-".into())
}

/// The HTML text of a report with its charts.
pub fn render(r: &Report, charts: &[Chart]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>smc-analyze report</title>\n<style>\
body{{font-family:sans-serif;margin:2em;max-width:1000px}}table{{border-collapse:collapse;margin:1em 0}}\
td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}th{{background:#eee}}td.l,th.l{{text-align:left}}\
.warn{{color:#a00}}figure{{margin:1.5em 0}}svg{{max-width:100%;height:auto}}</style></head><body>\n\
<h1>smc-analyze report</h1>\n"
    );
    let _ = writeln!(h, "<h2>Recordings</h2><table><tr><th>#</th><th class=l>path</th><th class=l>host</th><th class=l>kernel</th><th>events</th><th>lost</th><th>span</th><th class=l>clock</th></tr>");
    for rec in &r.recordings {
        let clock = r
            .clock
            .get(rec.index)
            .map(|c| match (c.offset_ns, c.uncertainty_ns) {
                _ if c.method == "reference" => "reference".to_string(),
                (Some(o), Some(u)) => format!("{} ± {} ({})", fmt(o), fmt(u as i64), c.method),
                (Some(o), None) => format!("{} ({})", fmt(o), c.method),
                _ => format!("unknown ({})", c.method),
            })
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=l>{}</td></tr>",
            rec.index,
            esc(&rec.path),
            esc(&rec.host),
            esc(&rec.kernel_release),
            rec.events,
            rec.lost_events,
            fmt(rec.duration_ns as i64),
            esc(&clock)
        );
    }
    h.push_str("</table>\n");
    for rec in &r.recordings {
        for w in &rec.warnings {
            let _ = writeln!(h, "<p class=warn>[{}] {}</p>", rec.index, esc(w));
        }
    }
    let s = &r.summary;
    let _ = writeln!(
        h,
        "<h2>Summary</h2><p>{} span, {} events, {} lost; {} connection(s) ({}); {} messages ({} complete, {} incomplete, {} fallback, {} receive-only), {} bytes.</p>",
        fmt(s.duration_ns as i64),
        s.events,
        s.lost_events,
        s.connections,
        esc(&s.connections_by_mode.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")),
        s.messages,
        s.complete_messages,
        s.incomplete_messages,
        s.fallback_messages,
        s.rx_only_messages,
        s.bytes
    );
    if !r.fallback_reasons.is_empty() {
        h.push_str("<h2>Fallback reasons</h2><table><tr><th>code</th><th class=l>name</th><th class=l>side</th><th>connections</th><th class=l>meaning</th></tr>\n");
        for f in &r.fallback_reasons {
            let _ = writeln!(
                h,
                "<tr><td>{:#010x}</td><td class=l>{}</td><td class=l>{:?}</td><td>{}</td><td class=l>{}</td></tr>",
                f.code,
                esc(&f.name),
                f.side,
                f.connections,
                esc(&f.meaning)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Stages (complete messages)</h2><table><tr><th class=l>stage</th><th>count</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n");
    let rows = r
        .stages
        .iter()
        .map(|st| (st.stage, &st.summary))
        .chain(r.handshake.as_ref().map(|x| ("handshake", x)));
    for (name, x) in rows {
        let cells: String = x.cells().iter().map(|c| format!("<td>{c}</td>")).collect();
        let _ = writeln!(h, "<tr><td class=l>{name}</td>{cells}</tr>");
    }
    h.push_str("</table>\n");
    h.push_str("<h2>Connections</h2><table><tr><th>id</th><th class=l>mode</th><th class=l>client → server</th><th>msgs →/←</th><th>bytes →/←</th><th>incomplete</th><th>p50</th><th>p99</th><th class=l>basis</th><th class=l>dominant</th><th class=l>fallback</th></tr>\n");
    for c in &r.connections {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=l>{}</td><td class=l>{} → {}</td><td>{}/{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td></tr>",
            c.id,
            c.mode.label(),
            esc(c.client.as_deref().unwrap_or("?")),
            esc(c.server.as_deref().unwrap_or("?")),
            c.messages_fwd,
            c.messages_bwd,
            c.bytes_fwd,
            c.bytes_bwd,
            c.incomplete,
            opt(c.latency_p50_ns),
            opt(c.latency_p99_ns),
            c.latency_basis,
            c.dominant_stage.unwrap_or("-"),
            esc(&c.fallback.as_ref().map(|f| format!("{:#010x} {}", f.code, f.name)).unwrap_or_default())
        );
    }
    h.push_str("</table>\n<h2>Charts</h2>\n");
    for c in charts {
        // plotters writes an XML declaration-free <svg> element: inline as is.
        let _ = writeln!(
            h,
            "<figure>{}<figcaption>{}</figcaption></figure>",
            c.svg,
            esc(&c.title)
        );
    }
    let _ = writeln!(h, "<h2>Slowest {} messages</h2><table><tr><th>conn</th><th class=l>dir</th><th>len</th><th>latency</th><th class=l>basis</th><th class=l>blocking stage</th><th class=l>stages</th></tr>", r.slowest.len());
    for m in &r.slowest {
        let stages = m
            .stages
            .iter()
            .map(|(k, v)| format!("{k} {}", fmt(*v)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=l>{:?}</td><td>{}</td><td>{}</td><td class=l>{}</td><td class=l>{}</td><td class=l>{}{}</td></tr>",
            m.conn,
            m.dir,
            m.len,
            fmt(m.latency_ns),
            m.latency_basis,
            m.blocking_stage.unwrap_or("-"),
            esc(&stages),
            if m.gaps.is_empty() { String::new() } else { format!(" <span class=warn>gaps: {}</span>", m.gaps.join(", ")) }
        );
    }
    h.push_str("</table>\n<p>Generated by smc-analyze; stage definitions in docs/analyzer.md.</p></body></html>\n");
    h
}
