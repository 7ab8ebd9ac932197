//! Draws one connection as an inline SVG timeline: its client leg and upstream leg on one time axis, with requests, responses, FIN/RST and every fault marker named by its rule.
//!
//! Each leg is a lane with two rows: `client->upstream` above its line (requests, uploads) and
//! `upstream->client` below (responses). Times come from the flow's [`FlowTimeline`]; message
//! starts and ends are the arrival times of the bytes at their stream offsets. All text comes
//! from the capture and is escaped with [`super::html::escape`].

use std::fmt::Write;

use super::exchange::Exchange;
use super::h2_model::{GoawayNote, H2Stream};
use super::html::escape;
use super::leg;
use super::model::FlowSummary;
use super::text::{comment_text, fault_rule, truncate};
use super::timeline::{EventKind, FlowTimeline};
use crate::direction::Direction;
use crate::plural::count;

/// Drawing width in SVG user units.
const WIDTH: f64 = 1000.0;
/// Left margin for the lane labels.
const LEFT: f64 = 180.0;
/// Right margin.
const RIGHT: f64 = 20.0;
/// Height of one leg's lane.
const LANE: f64 = 150.0;
/// Height of the time axis.
const AXIS: f64 = 34.0;
/// Characters of a label before it is cut (the full text is in the marker's tooltip).
const LABEL: usize = 28;
/// Characters of a fault's rule name tried, longest first, until its label finds room: the rule
/// is what the reader looks for (the whole comment is in the marker's tooltip).
const FAULT_LABELS: [usize; 3] = [80, 40, 20];

/// One leg of a connection as drawn: its flow, timing and messages.
pub struct LegView<'a> {
    /// The flow.
    pub flow: &'a FlowSummary,
    /// Its timing.
    pub timeline: &'a FlowTimeline,
    /// Its HTTP/1 exchanges.
    pub exchanges: Vec<&'a Exchange>,
    /// Its HTTP/2 streams.
    pub streams: Vec<&'a H2Stream>,
    /// Its HTTP/2 GOAWAYs.
    pub goaways: Vec<&'a GoawayNote>,
}

/// The rule name in a fault comment (`faultline: rule "NAME" reset …`), else the comment.
pub fn rule_name(comment: &str) -> &str {
    fault_rule(comment).unwrap_or(comment)
}

/// Estimated width of `text` at the timeline's 10px font: capitals and digits run wider than
/// lower case, so `RST_STREAM CANCEL` does not run into its neighbour, and a fault's label
/// (`⚡ rule`) is bold.
fn text_width(text: &str) -> f64 {
    let bold = if text.starts_with('⚡') { 1.12 } else { 1.0 };
    bold * text
        .chars()
        .map(|c| match c {
            'A'..='Z' | '0'..='9' | '⚡' | '_' => 6.9,
            'i' | 'l' | 'j' | 't' | 'f' | 'r' | '.' | ',' | ' ' | '/' | '|' | ':' => 3.6,
            _ => 5.9,
        })
        .sum::<f64>()
        + 6.0
}

/// `text` cut to at most `max` characters, `…` included, at a space when one falls in the
/// second half (`… dies after 1…`, not `… dies after 1 M…`).
fn clip(text: &str, max: usize) -> String {
    let max = max.max(2);
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max - 1).collect();
    let at = cut
        .rfind(' ')
        .filter(|&i| cut[..i].chars().count() >= max / 2);
    match at {
        Some(i) => format!("{}…", cut[..i].trim_end()),
        None => format!("{cut}…"),
    }
}

/// Rows of text at fixed heights: a label takes the first row where it overlaps no label placed
/// before it (in any order), or is left out (its marker keeps the full text as a tooltip).
struct Bands {
    /// Each row's y offset from the marker's row, and the spans its labels take.
    rows: Vec<(f64, Vec<(f64, f64)>)>,
}

impl Bands {
    fn new(offsets: &[f64]) -> Bands {
        Bands {
            rows: offsets.iter().map(|&dy| (dy, Vec::new())).collect(),
        }
    }

    /// Where a label of `text` next to a marker at `x` goes: `(x, anchor, dy)`, or `None`.
    /// Near the right edge a label runs leftwards so it stays inside the drawing.
    fn place(&mut self, x: f64, text: &str) -> Option<(f64, &'static str, f64)> {
        let width = text_width(text);
        let (tx, anchor, start, end) = if x + 9.0 + width > WIDTH - RIGHT {
            (x - 7.0, "end", x - 7.0 - width, x - 7.0)
        } else {
            (x + 9.0, "start", x + 9.0, x + 9.0 + width)
        };
        // Run leftwards, a long label would cover the lane's own labels.
        if start < LEFT {
            return None;
        }
        let row = self
            .rows
            .iter_mut()
            .find(|(_, taken)| taken.iter().all(|&(a, b)| end <= a || start >= b))?;
        row.1.push((start, end));
        Some((tx, anchor, row.0))
    }
}

/// The label rows of one lane.
struct Labels {
    requests: Bands,
    responses: Bands,
    faults_up: Bands,
    faults_down: Bands,
    /// Frame labels drawn, with their marker's x: the same label next to one already drawn
    /// (three streams ending `grpc-status 0 OK` together) is left to its tooltip.
    frames: Vec<(f64, Direction, String)>,
}

impl Labels {
    fn new() -> Labels {
        Labels {
            requests: Bands::new(&[-10.0, -20.0]),
            responses: Bands::new(&[19.0]),
            faults_up: Bands::new(&[-32.0, -42.0, -52.0]),
            faults_down: Bands::new(&[31.0, 41.0, 51.0]),
            frames: Vec::new(),
        }
    }
}

/// The `FIN`/`RST` text beside an end marker at (`x`, `y`), `gap` after it, or before it near
/// the right edge (at x≈987 of 1000, "RST" showed as "RS"); empty when another end's text in
/// the same row already covers that place (a FIN and a RST at one instant printed over each
/// other): the marker's tooltip still says it.
fn end_mark(
    drawn: &mut Vec<(Direction, f64, f64)>,
    x: f64,
    gap: f64,
    y: f64,
    direction: Direction,
    text: &str,
) -> String {
    let width = text_width(text);
    let (tx, anchor, start) = if x + gap + width > WIDTH - 2.0 {
        (x - gap, "end", x - gap - width)
    } else {
        (x + gap, "start", x + gap)
    };
    let end = start + width;
    if drawn
        .iter()
        .any(|&(d, a, b)| d == direction && start < b && end > a)
    {
        return String::new();
    }
    drawn.push((direction, start, end));
    format!(
        r#"<text class="mark" x="{tx:.1}" y="{:.1}" text-anchor="{anchor}">{text}</text>"#,
        y + 3.0
    )
}

/// `<text>` for a label placed by `bands` next to a marker at (`x`, `y`); empty when it does not fit.
fn label(bands: &mut Bands, x: f64, y: f64, text: &str) -> String {
    match bands.place(x, text) {
        Some((tx, anchor, dy)) => format!(
            r#"<text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
            y + dy,
            escape(text)
        ),
        None => String::new(),
    }
}

/// The ▶ of a request whose tip is at (`x`, `y`).
fn request_shape(x: f64, y: f64) -> String {
    format!("M{x:.1} {:.1} l7 5 l-7 5 z", y - 5.0)
}

/// The ◀ of a response starting at `x`, on the row at `y`.
fn response_shape(x: f64, y: f64) -> String {
    format!("M{:.1} {:.1} l-7 5 l7 5 z", x + 7.0, y - 5.0)
}

/// The ⚡ of a fault a rule injected, centred on (`x`, `y`): the symbol its label starts with,
/// and unlike the ◆ of an HTTP/2 frame (a trial read a truncate's diamond as a RST_STREAM).
fn fault_shape(x: f64, y: f64) -> String {
    format!(
        "M{:.1} {:.1} l-6 8 h4.5 l-2.5 6 l7 -9 h-4.5 l2.5 -5 z",
        x + 1.5,
        y - 7.0
    )
}

/// The ✕ of a RST centred on (`x`, `y`).
fn rst_shape(x: f64, y: f64) -> String {
    format!("M{:.1} {:.1} l10 10 m0 -10 l-10 10", x - 5.0, y - 5.0)
}

/// The ◆ of an HTTP/2 frame (RST_STREAM, GOAWAY, grpc-status) centred on (`x`, `y`).
fn frame_shape(x: f64, y: f64) -> String {
    format!("M{x:.1} {:.1} l5 5 l-5 5 l-5 -5 z", y - 5.0)
}

/// The key to the timelines: each marker drawn by the function that draws it on a lane, so the
/// legend and the drawing cannot disagree.
pub fn legend() -> String {
    let key = |class: &str, shape: String| {
        format!(
            r#"<svg class="key" viewBox="-8 -8 16 16" width="14" height="14" aria-hidden="true"><g class="{class}"><path d="{shape}"/></g></svg>"#
        )
    };
    let fin = r#"<svg class="key" viewBox="-8 -8 16 16" width="14" height="14" aria-hidden="true"><g class="fin"><line x1="0" y1="-6" x2="0" y2="6"/></g></svg>"#;
    let rst = r#"<svg class="key" viewBox="-8 -8 16 16" width="14" height="14" aria-hidden="true"><g class="rst">"#
        .to_string()
        + &format!(r#"<path d="{}"/></g></svg>"#, rst_shape(0.0, 0.0));
    format!(
        r#"<p class="legend"><span><i>{} request</i> (bar: its body)</span><span><i>{} response</i> (bar: until its last DATA)</span><span><i>{} fault,</i> named by its rule</span><span><i>{rst} RST</i></span><span><i>{fin} FIN</i></span><span><i>{} RST_STREAM</i></span><span><i>{} GOAWAY</i></span><span><i>{} grpc-status:</i> where the frame crossed</span><span>time from the connection's first packet</span></p>"#,
        key("request", request_shape(-3.0, 0.0)),
        key("response", response_shape(-4.0, 0.0)),
        key("fault", fault_shape(0.0, 0.0)),
        key("rst-stream", frame_shape(0.0, 0.0)),
        key("goaway", frame_shape(0.0, 0.0)),
        key("grpc-status", frame_shape(0.0, 0.0)),
    )
}

/// A span of time mapped onto the drawing's x axis.
struct Scale {
    start: u64,
    span: u64,
}

impl Scale {
    fn x(&self, ns: u64) -> f64 {
        let rel = ns.saturating_sub(self.start) as f64 / self.span as f64;
        LEFT + rel.clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }
}

/// `1.5 ms`, `250 µs`, `2 s`: a relative time for axis labels; the axis's start is `0`, not
/// `0 ns` (which read as a unit the rest of the axis does not use).
pub fn format_span(ns: u64) -> String {
    if ns == 0 {
        return "0".to_string();
    }
    let (value, unit) = if ns >= 1_000_000_000 {
        (ns as f64 / 1e9, "s")
    } else if ns >= 1_000_000 {
        (ns as f64 / 1e6, "ms")
    } else if ns >= 1_000 {
        (ns as f64 / 1e3, "µs")
    } else {
        (ns as f64, "ns")
    };
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {unit}")
}

/// A tick step of 1, 2 or 5 × 10^k nanoseconds giving at most about 8 ticks over `span`.
fn tick_step(span: u64) -> u64 {
    let rough = (span / 8).max(1);
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= rough {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// The SVG of one connection (one or two legs). `id` names it for links from the findings.
pub fn render(id: &str, legs: &[LegView<'_>]) -> String {
    let start = legs.iter().map(|l| l.timeline.opened_ns).min().unwrap_or(0);
    let end = legs
        .iter()
        .map(|l| l.timeline.last_ns)
        .max()
        .unwrap_or(start);
    let scale = Scale {
        start,
        span: end.saturating_sub(start).max(1),
    };
    let height = LANE * legs.len() as f64 + AXIS;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="timeline" id="{}" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        escape(id),
        escape(&format!(
            "timeline of {}",
            legs.iter()
                .map(|l| format!("{} leg flow {}", leg::name(l.flow.leg), l.flow.id))
                .collect::<Vec<_>>()
                .join(" and ")
        ))
    );
    for (i, view) in legs.iter().enumerate() {
        let top = LANE * i as f64;
        if i > 0 {
            let _ = write!(
                s,
                r#"<line class="separator" x1="0" y1="{top}" x2="{WIDTH}" y2="{top}"/>"#
            );
        }
        lane(&mut s, &scale, top, view);
    }
    axis(&mut s, &scale, LANE * legs.len() as f64);
    s.push_str("</svg>");
    s
}

fn axis(s: &mut String, scale: &Scale, top: f64) {
    let y = top + 8.0;
    let _ = write!(
        s,
        r#"<g class="axis"><line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}"/>"#,
        WIDTH - RIGHT
    );
    let step = tick_step(scale.span);
    let mut t = 0u64;
    while t <= scale.span {
        let x = scale.x(scale.start.saturating_add(t));
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{y}" x2="{x:.1}" y2="{}"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            y + 5.0,
            y + 18.0,
            escape(&format_span(t))
        );
        t = match t.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    s.push_str("</g>");
}

/// A byte count short enough for the lane's label column: `446 B`, `8.4 MB` (SI units, one
/// decimal); the exact count is in the label's tooltip.
fn short_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The y of a direction's row inside a lane whose line is at `mid`.
fn row(mid: f64, dir: Direction) -> f64 {
    match dir {
        Direction::ClientToUpstream => mid - 16.0,
        Direction::UpstreamToClient => mid + 16.0,
    }
}

fn lane(s: &mut String, scale: &Scale, top: f64, view: &LegView<'_>) {
    let t = view.timeline;
    let mid = top + LANE / 2.0;
    let (x0, x1) = (scale.x(t.opened_ns), scale.x(t.last_ns));
    let _ = write!(
        s,
        r#"<g class="lane" data-leg="{leg}" data-flow="{flow}"><text class="lane-label" x="6" y="{:.1}">{leg} leg</text><text class="lane-sub" x="6" y="{:.1}">flow {flow}</text><text class="lane-sub lane-bytes" x="6" y="{:.1}"><title>{} bytes client→upstream, {} bytes upstream→client</title>↑ {} · ↓ {}</text><text class="dir" x="{:.1}" y="{:.1}">client→upstream</text><text class="dir" x="{:.1}" y="{:.1}">upstream→client</text><line class="life" x1="{x0:.1}" y1="{mid}" x2="{x1:.1}" y2="{mid}"/>"#,
        mid - 4.0,
        mid + 10.0,
        // Below the direction labels' rows, so a long count never runs into them.
        mid + 34.0,
        t.bytes[0],
        t.bytes[1],
        short_bytes(t.bytes[0]),
        short_bytes(t.bytes[1]),
        LEFT - 4.0,
        row(mid, Direction::ClientToUpstream) + 3.0,
        LEFT - 4.0,
        row(mid, Direction::UpstreamToClient) + 3.0,
        leg = leg::name(view.flow.leg),
        flow = view.flow.id,
    );
    let mut labels = Labels::new();
    let request_labels = request_labels(scale, &view.exchanges);
    for (ex, text) in view.exchanges.iter().zip(request_labels) {
        exchange(s, scale, mid, t, ex, text.as_deref(), &mut labels);
    }
    // Events first: a fault's rule label takes its row before the frame labels around it.
    let mut labelled: Vec<&str> = Vec::new();
    let mut ends: Vec<(Direction, f64, f64)> = Vec::new();
    for event in &t.events {
        let x = scale.x(event.ns);
        let y = row(mid, event.direction);
        match &event.kind {
            EventKind::Fin => {
                let text = end_mark(&mut ends, x, 3.0, y, event.direction, "FIN");
                let _ = write!(
                    s,
                    r#"<g class="fin" data-ns="{}" data-x="{x:.1}"><title>FIN {} at offset {}</title><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}"/>{text}</g>"#,
                    event.ns,
                    event.direction,
                    event.offset,
                    y - 6.0,
                    y + 6.0,
                );
            }
            EventKind::Reset => {
                let text = end_mark(&mut ends, x, 7.0, y, event.direction, "RST");
                let _ = write!(
                    s,
                    r#"<g class="rst" data-ns="{}" data-x="{x:.1}"><title>RST {} at offset {}</title><path d="{}"/>{text}</g>"#,
                    event.ns,
                    event.direction,
                    event.offset,
                    rst_shape(x, y),
                );
            }
            EventKind::Gap { missing } => {
                let _ = write!(
                    s,
                    r#"<g class="gap" data-ns="{}" data-x="{x:.1}"><title>{} missing from the capture at {} offset {}</title><rect x="{:.1}" y="{:.1}" width="4" height="10"/></g>"#,
                    event.ns,
                    crate::plural::count(missing, "byte"),
                    event.direction,
                    event.offset,
                    x - 2.0,
                    y - 5.0
                );
            }
            // A comment that names no rule (the FINs faultline sends when a run stops) is a
            // note on the lane, not a ⚡ fault.
            EventKind::Fault(text) if fault_rule(text).is_none() => {
                let note = comment_text(text);
                let _ = write!(
                    s,
                    r#"<g class="note" data-ns="{}" data-x="{x:.1}"><title>{} ({} offset {})</title><circle cx="{x:.1}" cy="{y:.1}" r="3"/></g>"#,
                    event.ns,
                    escape(&note),
                    event.direction,
                    event.offset,
                );
            }
            EventKind::Fault(text) => {
                let rule = rule_name(text);
                // One fault marks several packets (both RSTs of a reset): label it once.
                let label = if labelled.contains(&rule) {
                    String::new()
                } else {
                    labelled.push(rule);
                    let bands = match event.direction {
                        Direction::ClientToUpstream => &mut labels.faults_up,
                        Direction::UpstreamToClient => &mut labels.faults_down,
                    };
                    FAULT_LABELS
                        .iter()
                        .map(|&n| label(bands, x, y, &format!("⚡ {}", clip(rule, n))))
                        .find(|text| !text.is_empty())
                        .unwrap_or_default()
                };
                let _ = write!(
                    s,
                    r#"<g class="fault" data-rule="{}" data-ns="{}" data-x="{x:.1}"><title>{}</title><path d="{}"/>{label}</g>"#,
                    escape(rule),
                    event.ns,
                    escape(&format!(
                        "{} ({} offset {})",
                        text, event.direction, event.offset
                    )),
                    fault_shape(x, y),
                );
            }
        }
    }
    let stream_labels = stream_labels(scale, &view.streams);
    for (st, group) in view.streams.iter().zip(stream_labels) {
        let x = scale.x(st.opened_ns);
        let y = row(mid, Direction::ClientToUpstream);
        let what = format!(
            "stream {} {} {}",
            st.stream,
            st.method.as_deref().unwrap_or("-"),
            st.path.as_deref().unwrap_or("-")
        );
        let text = group.map_or(String::new(), |g| label(&mut labels.requests, x, y, &g));
        let _ = write!(
            s,
            r#"<g class="request h2" data-stream="{}"><title>{}</title><path d="{}"/>{text}</g>"#,
            st.stream,
            escape(&what),
            request_shape(x, y),
        );
        stream_response(s, scale, mid, st, &mut labels);
        if let Some(r) = &st.reset {
            // Where the RST_STREAM crossed; the stream's start only when the frame's time is unknown.
            let ns = r.at_ns.unwrap_or(st.opened_ns);
            frame_marker(
                s,
                scale,
                mid,
                &mut labels,
                FrameMark {
                    class: "rst-stream",
                    ns,
                    direction: direction_named(&r.by),
                    label: format!("RST_STREAM {}", r.code),
                    title: format!("stream {} reset {} by {}", st.stream, r.code, r.by),
                },
            );
        }
        if let (Some(code), Some(ns)) = (st.grpc_status, st.grpc_status_ns) {
            let name = st.grpc_status_name.as_deref().unwrap_or("");
            frame_marker(
                s,
                scale,
                mid,
                &mut labels,
                FrameMark {
                    class: "grpc-status",
                    ns,
                    direction: Direction::UpstreamToClient,
                    label: format!("grpc-status {code} {name}").trim_end().to_string(),
                    title: format!(
                        "stream {} answered grpc-status {code} {name}{}",
                        st.stream,
                        st.grpc_message
                            .as_deref()
                            .map_or(String::new(), |m| format!(": {m}"))
                    ),
                },
            );
        }
    }
    for g in &view.goaways {
        frame_marker(
            s,
            scale,
            mid,
            &mut labels,
            FrameMark {
                class: "goaway",
                ns: g.at_ns,
                direction: direction_named(&g.by),
                label: format!("GOAWAY {}", g.code),
                title: format!(
                    "GOAWAY {} by {}, last stream {}{}",
                    g.code,
                    g.by,
                    g.last_stream,
                    if g.debug.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", g.debug)
                    }
                ),
            },
        );
    }
    s.push_str("</g>");
}

/// One request label per group of requests sent so close together that their labels would
/// overlap (pipelined: `GET /p/0 +2`), on the group's first request; `None` for the others.
/// Without grouping, the third of three pipelined requests had no label and the second's sat
/// above the first's.
fn request_labels(scale: &Scale, exchanges: &[&Exchange]) -> Vec<Option<String>> {
    // (first member, its x, members)
    let mut groups: Vec<(usize, f64, usize)> = Vec::new();
    for (i, ex) in exchanges.iter().enumerate() {
        let x = scale.x(ex.time_ns);
        match groups.last_mut() {
            Some((_, at, members)) if x - *at < 40.0 => *members += 1,
            _ => groups.push((i, x, 1)),
        }
    }
    let mut out = vec![None; exchanges.len()];
    for (i, _, members) in groups {
        // A p2phttp request by its operation and offset (a trial could not tell resumed gets
        // apart by their long URLs cut at the label's end).
        let ex = exchanges[i];
        let text = match super::p2phttp::P2pRequest::of(ex) {
            Some(p) if p.offset > 0 => format!("p2phttp {} @{}", p.operation, p.offset),
            Some(p) => format!("p2phttp {}", p.operation),
            None => truncate(&format!("{} {}", ex.method, ex.target), LABEL),
        };
        out[i] = Some(match members {
            1 => text,
            n => format!("{text} +{}", n - 1),
        });
    }
    out
}

/// Characters of a stream group's label before it is cut.
const STREAM_LABEL: usize = 40;
/// Stream ids named in one group label before `+N`.
const GROUP_IDS: usize = 4;

/// What a stream asked for, short: `ByteStream/Read` for a gRPC path
/// (`/google.bytestream.ByteStream/Read`), else `GET /path`.
fn short_request(st: &H2Stream) -> String {
    let path = st.path.as_deref().unwrap_or("-");
    let grpc = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(service, method)| !method.contains('/') && service.contains('.'));
    match grpc {
        Some((service, method)) => {
            let service = service.rsplit('.').next().unwrap_or(service);
            format!("{service}/{method}")
        }
        None => format!("{} {path}", st.method.as_deref().unwrap_or("-")),
    }
}

/// One label per group of streams opened so close together that their labels would overlap
/// (`streams 1, 3, 5 ByteStream/Read`), on the group's first stream; `None` for the others.
/// Without grouping, only the first of three simultaneous requests was named.
fn stream_labels(scale: &Scale, streams: &[&H2Stream]) -> Vec<Option<String>> {
    let mut order: Vec<usize> = (0..streams.len()).collect();
    order.sort_by_key(|&i| (streams[i].opened_ns, streams[i].stream));
    let mut groups: Vec<(f64, Vec<usize>)> = Vec::new();
    for i in order {
        let x = scale.x(streams[i].opened_ns);
        match groups.last_mut() {
            Some((first, members)) if x - *first < 40.0 => members.push(i),
            _ => groups.push((x, vec![i])),
        }
    }
    let mut out = vec![None; streams.len()];
    for (_, members) in groups {
        let ids: Vec<String> = members
            .iter()
            .take(GROUP_IDS)
            .map(|&i| streams[i].stream.to_string())
            .collect();
        let more = members.len().saturating_sub(GROUP_IDS);
        let mut text = if members.len() == 1 {
            format!("stream {}", ids[0])
        } else {
            format!("streams {}", ids.join(", "))
        };
        if more > 0 {
            text += &format!(" +{more}");
        }
        let what = short_request(streams[members[0]]);
        if members.iter().all(|&i| short_request(streams[i]) == what) {
            text += &format!(" {what}");
        }
        out[members[0]] = Some(truncate(&text, STREAM_LABEL));
    }
    out
}

/// The response of a stream: a ◀ where its headers crossed and a bar to its last DATA or
/// trailers before any reset, labelled with its `:status`.
fn stream_response(s: &mut String, scale: &Scale, mid: f64, st: &H2Stream, labels: &mut Labels) {
    let Some(at) = st.response_ns else {
        return;
    };
    let until = st.response_last_ns.unwrap_or(at).max(at);
    let (x, xe) = (scale.x(at), scale.x(until));
    let y = row(mid, Direction::UpstreamToClient);
    let status = st.status.map_or("-".into(), |c| c.to_string());
    let text = label(
        &mut labels.responses,
        x,
        y,
        &format!("stream {} · {status}", st.stream),
    );
    let _ = write!(
        s,
        r#"<g class="response h2" data-stream="{}"><title>{}</title><rect x="{x:.1}" y="{:.1}" width="{:.1}" height="6"/><path d="{}"/>{text}</g>"#,
        st.stream,
        escape(&format!(
            "stream {}: status {status}, {}",
            st.stream,
            count(st.response_bytes, "DATA byte")
        )),
        y - 3.0,
        (xe - x).max(1.0),
        response_shape(x, y),
    );
}

/// An HTTP/2 frame drawn where it crossed the wire.
struct FrameMark {
    class: &'static str,
    ns: u64,
    direction: Direction,
    label: String,
    title: String,
}

/// `client->upstream` or `upstream->client` as a [`Direction`] (an unknown name: the response row).
fn direction_named(name: &str) -> Direction {
    if name == Direction::ClientToUpstream.to_string() {
        Direction::ClientToUpstream
    } else {
        Direction::UpstreamToClient
    }
}

/// A diamond at the frame's own time on its direction's row, labelled if there is room; its
/// `data-ns` and `data-x` say where it was put (for checks of the geometry).
fn frame_marker(s: &mut String, scale: &Scale, mid: f64, labels: &mut Labels, mark: FrameMark) {
    let x = scale.x(mark.ns);
    let y = row(mid, mark.direction);
    let shown = truncate(&mark.label, LABEL);
    let near = text_width(&shown);
    let repeated = labels
        .frames
        .iter()
        .any(|(at, d, t)| *d == mark.direction && *t == shown && (at - x).abs() < near);
    let bands = match mark.direction {
        Direction::ClientToUpstream => &mut labels.faults_up,
        Direction::UpstreamToClient => &mut labels.faults_down,
    };
    let text = if repeated {
        String::new()
    } else {
        label(bands, x, y, &shown)
    };
    if !text.is_empty() {
        labels.frames.push((x, mark.direction, shown));
    }
    let _ = write!(
        s,
        r#"<g class="{}" data-ns="{}" data-x="{x:.1}"><title>{}</title><path d="{}"/>{text}</g>"#,
        mark.class,
        mark.ns,
        escape(&mark.title),
        frame_shape(x, y),
    );
}

fn exchange(
    s: &mut String,
    scale: &Scale,
    mid: f64,
    t: &FlowTimeline,
    ex: &Exchange,
    request_label: Option<&str>,
    labels: &mut Labels,
) {
    let up = Direction::ClientToUpstream;
    let down = Direction::UpstreamToClient;
    let start = ex.time_ns;
    // A message that never ended (cut) ran to the last byte its direction carried: its bar
    // spans that, not a sliver at its head (the cut body is the one a reader looks for).
    let end = t
        .time_before(up, ex.request_range.1.unwrap_or(t.bytes[0]))
        .unwrap_or(start)
        .max(start);
    let (x, xe) = (scale.x(start), scale.x(end));
    let y = row(mid, up);
    let what = format!(
        "exchange {}: {} {} ({}{})",
        ex.id,
        ex.method,
        ex.target,
        count(ex.request.length, "body byte"),
        if ex.request.complete { "" } else { ", cut" }
    );
    let text = request_label.map_or(String::new(), |text| {
        label(&mut labels.requests, x, y, text)
    });
    let _ = write!(
        s,
        r#"<g class="request" data-exchange="{}"><title>{}</title><rect x="{x:.1}" y="{:.1}" width="{:.1}" height="6"/><path d="{}"/>{text}</g>"#,
        ex.id,
        escape(&what),
        y - 3.0,
        (xe - x).max(1.0),
        request_shape(x, y),
    );
    let Some((rstart, rend)) = ex.response_range else {
        return;
    };
    let Some(at) = t.time_at(down, rstart) else {
        return;
    };
    let until = t
        .time_before(down, rend.unwrap_or(t.bytes[1]))
        .unwrap_or(at)
        .max(at);
    let (x, xe) = (scale.x(at), scale.x(until));
    let y = row(mid, down);
    let text = label(&mut labels.responses, x, y, &ex.response_text());
    let _ = write!(
        s,
        r#"<g class="response" data-exchange="{}"><title>{}</title><rect x="{x:.1}" y="{:.1}" width="{:.1}" height="6"/><path d="{}"/>{text}</g>"#,
        ex.id,
        escape(&format!(
            "exchange {}: {} ({}{})",
            ex.id,
            ex.response_text(),
            count(ex.response.body_length, "body byte"),
            if ex.response.complete { "" } else { ", cut" }
        )),
        y - 3.0,
        (xe - x).max(1.0),
        response_shape(x, y),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three pipelined GETs (sent together) get one label, `GET /p/0 +2`; a request sent later
    /// gets its own.
    /// Found by fuzzing with real captures as seeds: a capture whose timestamps sit at the end
    /// of the u64 range (span widened to 1 ns) overflowed the axis's tick arithmetic.
    #[test]
    fn an_axis_at_the_end_of_time_draws() {
        let mut s = String::new();
        axis(
            &mut s,
            &Scale {
                start: u64::MAX,
                span: 1,
            },
            0.0,
        );
        assert!(s.contains("<g class=\"axis\">"), "{s}");
    }

    #[test]
    fn pipelined_requests_share_one_label() {
        use crate::direction::Leg;
        use crate::inspect::legs::tests::exchange;
        let at = |id: usize, target: &str, ns: u64| {
            let mut ex = exchange(id, Leg::Client, 0, "GET", target, None);
            ex.time_ns = ns;
            ex
        };
        let exchanges = [
            at(0, "/p/0", 0),
            at(1, "/p/1", 10),
            at(2, "/p/2", 20),
            at(3, "/later", 900),
        ];
        let refs: Vec<&Exchange> = exchanges.iter().collect();
        let scale = Scale {
            start: 0,
            span: 1000,
        };
        assert_eq!(
            request_labels(&scale, &refs),
            [
                Some("GET /p/0 +2".to_string()),
                None,
                None,
                Some("GET /later".to_string())
            ]
        );
    }

    /// git-annex p2phttp requests are labelled by operation and offset: a trial's three resumed
    /// gets read alike, their long URLs cut at the label's end.
    #[test]
    fn p2phttp_requests_are_labelled_by_operation_and_offset() {
        use crate::direction::Leg;
        use crate::inspect::legs::tests::exchange;
        let key =
            "SHA256E-s300000--f644d624e78a695a2a577006647e67234a18459954715bbbf9626500c42188e4.bin";
        let at = |id: usize, tail: &str, ns: u64| {
            let target = format!("/git-annex/9187eb5e-edc6-4836/v4/key/{key}?clientuuid=c{tail}");
            let mut ex = exchange(id, Leg::Client, 0, "GET", &target, None);
            ex.time_ns = ns;
            ex
        };
        let exchanges = [at(0, "", 0), at(1, "&offset=102400", 500)];
        let refs: Vec<&Exchange> = exchanges.iter().collect();
        let scale = Scale {
            start: 0,
            span: 1000,
        };
        assert_eq!(
            request_labels(&scale, &refs),
            [
                Some("p2phttp get".to_string()),
                Some("p2phttp get @102400".to_string())
            ]
        );
    }

    /// The `data-x` of every `<g class="CLASS" …>` marker in `svg`.
    fn marker_xs(svg: &str, class: &str) -> Vec<f64> {
        svg.split(&format!(r#"<g class="{class}""#))
            .skip(1)
            .map(|rest| {
                let x = rest.split(r#"data-x=""#).nth(1).expect("data-x");
                x[..x.find('"').expect("quote")].parse().expect("a number")
            })
            .collect()
    }

    /// Issue 15: a RST_STREAM was drawn at its stream's start. Every frame and fault marker sits
    /// at the time it crossed, on the same axis as the stream's request marker.
    #[test]
    fn frame_and_fault_markers_sit_at_their_own_time() {
        let (open, stream_at, status_at, reset_at, goaway_at, end) =
            (1_000, 2_000, 6_000, 8_000, 10_000, 11_000);
        let flow = FlowSummary {
            id: 3,
            leg: Some(crate::direction::Leg::Client),
            client: "127.0.0.1:1".into(),
            server: "127.0.0.1:2".into(),
            opened_ns: open,
            saw_syn: true,
            http: false,
            exchanges: Vec::new(),
            faults: Vec::new(),
            h2: true,
            connection: None,
        };
        let mut timeline = FlowTimeline::new(3, open);
        let down = Direction::UpstreamToClient;
        timeline.event(
            down,
            10,
            reset_at,
            EventKind::Fault(r#"faultline: rule "cut" rst_stream CANCEL"#.into()),
        );
        timeline.event(down, 20, end, EventKind::Reset);
        timeline.event(Direction::ClientToUpstream, 5, end, EventKind::Fin);
        timeline.event(
            Direction::ClientToUpstream,
            5,
            end,
            EventKind::Fault("faultline: run stopped".into()),
        );
        let stream = H2Stream {
            flow: 3,
            leg: Some(crate::direction::Leg::Client),
            stream: 1,
            opened_ns: stream_at,
            method: Some("POST".into()),
            path: Some("/google.bytestream.ByteStream/Read".into()),
            authority: None,
            status: Some(200),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            trailers: Vec::new(),
            ignored_after_reset: Vec::new(),
            grpc_status: Some(14),
            grpc_status_name: Some("UNAVAILABLE".into()),
            grpc_message: None,
            grpc_status_ns: Some(status_at),
            response_ns: Some(stream_at + 1_000),
            response_last_ns: Some(status_at),
            request_bytes: 0,
            response_bytes: 0,
            request_messages: 0,
            response_messages: 0,
            request_ended: true,
            response_ended: false,
            response_content_length: None,
            response_cut: true,
            reset: Some(super::super::h2_model::ResetNote {
                by: down.to_string(),
                code: "CANCEL".into(),
                at_ns: Some(reset_at),
            }),
            faults: Vec::new(),
        };
        let goaway = GoawayNote {
            by: down.to_string(),
            last_stream: 1,
            code: "NO_ERROR".into(),
            debug: String::new(),
            at_ns: goaway_at,
        };
        let svg = render(
            "c",
            &[LegView {
                flow: &flow,
                timeline: &timeline,
                exchanges: Vec::new(),
                streams: vec![&stream],
                goaways: vec![&goaway],
            }],
        );
        let x = |ns: u64| {
            let at = LEFT + (ns - open) as f64 / (end - open) as f64 * (WIDTH - LEFT - RIGHT);
            (at * 10.0).round() / 10.0
        };
        assert_eq!(marker_xs(&svg, "rst-stream"), vec![x(reset_at)], "{svg}");
        assert!(
            x(reset_at) > x(stream_at) + 100.0,
            "not at the stream's start"
        );
        assert_eq!(marker_xs(&svg, "grpc-status"), vec![x(status_at)]);
        assert_eq!(marker_xs(&svg, "goaway"), vec![x(goaway_at)]);
        assert_eq!(marker_xs(&svg, "fault"), vec![x(reset_at)]);
        assert_eq!(marker_xs(&svg, "rst"), vec![x(end)]);
        assert_eq!(marker_xs(&svg, "fin"), vec![x(end)]);
        // The FIN note of a stopped run is no ⚡ fault.
        assert_eq!(marker_xs(&svg, "note"), vec![x(end)]);
        assert!(!svg.contains("⚡ faultline: run"), "{svg}");
        assert!(
            svg.contains(&format!(r#"<path d="M{:.1} "#, x(stream_at))),
            "request marker"
        );
        for text in [
            "RST_STREAM CANCEL",
            "grpc-status 14 UNAVAILABLE",
            "GOAWAY NO_ERROR",
        ] {
            assert!(svg.contains(text), "{text} labelled:\n{svg}");
        }
    }

    /// User trials at 1280 px: `flow 8 · 8389558 ↑ / 446 ↓ bytes` (x=6) ran into the direction
    /// labels that end at x=176. The counts are short (`8.4 MB`), on their own row below the
    /// direction labels, and exact in a tooltip.
    #[test]
    fn the_lane_label_never_runs_into_the_direction_labels() {
        assert_eq!(short_bytes(446), "446 B");
        assert_eq!(short_bytes(8_389_558), "8.4 MB");
        assert_eq!(short_bytes(999_999), "1.0 MB");
        assert_eq!(short_bytes(u64::MAX), "18446.7 PB");
        let flow = FlowSummary {
            id: 8,
            leg: Some(crate::direction::Leg::Upstream),
            client: "127.0.0.1:1".into(),
            server: "127.0.0.1:2".into(),
            opened_ns: 0,
            saw_syn: true,
            http: true,
            exchanges: Vec::new(),
            faults: Vec::new(),
            h2: false,
            connection: None,
        };
        let mut timeline = FlowTimeline::new(8, 0);
        timeline.bytes = [8_389_558, 446];
        timeline.event(Direction::ClientToUpstream, 5, 1_000, EventKind::Fin);
        let svg = render(
            "c",
            &[LegView {
                flow: &flow,
                timeline: &timeline,
                exchanges: Vec::new(),
                streams: Vec::new(),
                goaways: Vec::new(),
            }],
        );
        let y_of = |needle: &str| -> f64 {
            let at = svg
                .find(needle)
                .unwrap_or_else(|| panic!("no {needle:?} in {svg}"));
            let tag = &svg[svg[..at].rfind("<text").expect("text")..at];
            let y = tag.split(r#" y=""#).nth(1).expect("y");
            y[..y.find('"').expect("quote")].parse().expect("a number")
        };
        let bytes = "↑ 8.4 MB · ↓ 446 B</text>";
        assert!(svg.contains(">flow 8</text>"), "{svg}");
        assert!(
            svg.contains("<title>8389558 bytes client→upstream, 446 bytes upstream→client</title>"),
            "{svg}"
        );
        // 10 px type: a row 10 px below the lower direction label's baseline is clear of it,
        // and at most 6 px a character the counts end before the lanes' drawing starts.
        assert!(
            y_of(bytes) >= y_of(">upstream→client</text>") + 10.0,
            "{svg}"
        );
        let widest = "↑ 999.9 MB · ↓ 999.9 MB".chars().count() as f64;
        assert!(6.0 + 6.0 * widest < LEFT - 4.0);
        assert!(
            y_of(bytes) + 4.0 < y_of(">flow 8</text>") + LANE / 2.0,
            "inside the lane"
        );
    }

    /// End labels stay inside the drawing and never print over each other.
    #[test]
    fn end_labels_stay_inside_and_apart() {
        let mut drawn = Vec::new();
        let up = Direction::ClientToUpstream;
        let edge = end_mark(&mut drawn, WIDTH - 13.0, 7.0, 50.0, up, "RST");
        assert!(edge.contains(r#"text-anchor="end""#), "{edge}");
        let fin = end_mark(&mut drawn, 300.0, 3.0, 50.0, up, "FIN");
        assert!(fin.contains(">FIN<"), "{fin}");
        let rst = end_mark(&mut drawn, 300.0, 7.0, 50.0, up, "RST");
        assert!(rst.is_empty(), "drawn over the FIN: {rst}");
        let other_row = end_mark(
            &mut drawn,
            300.0,
            7.0,
            82.0,
            Direction::UpstreamToClient,
            "RST",
        );
        assert!(other_row.contains(">RST<"), "{other_row}");
    }

    /// A trial's cut upload, the exchange that mattered, was a 1-unit sliver while whole bodies
    /// had bars: a message that never ended runs to the last byte its direction carried.
    #[test]
    fn a_cut_body_gets_a_bar_as_long_as_what_crossed() {
        let up = Direction::ClientToUpstream;
        let mut t = FlowTimeline::new(1, 0);
        for i in 0..10u64 {
            t.data(up, i * 1000, 1000, 1_000_000 * (i + 1));
        }
        let ex = Exchange {
            id: 0,
            leg: None,
            flow: 1,
            time_ns: 1_000_000,
            method: "PUT".into(),
            target: "/x".into(),
            ..Exchange::empty()
        };
        let scale = Scale {
            start: 0,
            span: 10_000_000,
        };
        let mut svg = String::new();
        exchange(
            &mut svg,
            &scale,
            50.0,
            &t,
            &ex,
            Some("PUT /x"),
            &mut Labels::new(),
        );
        let width: f64 = svg
            .split(r#"width=""#)
            .nth(1)
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok())
            .expect("a bar width");
        assert!(width > 100.0, "the cut body's bar is {width} wide: {svg}");
        assert!(svg.contains(", cut"), "{svg}");
    }

    #[test]
    fn rule_names_come_out_of_fault_comments() {
        assert_eq!(
            rule_name(r#"faultline: rule "reset <b>" reset client->upstream after 10 bytes"#),
            "reset <b>"
        );
        assert_eq!(rule_name("something else"), "something else");
        // The HTTP/2 session's frame-level notes name their rule at the end.
        assert_eq!(
            fault_rule(
                r#"faultline: RST_STREAM(CANCEL) on stream 3 to the upstream (rule "cut (x)")"#
            ),
            Some("cut (x)")
        );
        assert_eq!(fault_rule("faultline: run stopped"), None);
    }

    /// Maintainer trial: a truncate's marker was a ◆, the legend's sign for RST_STREAM, GOAWAY
    /// and grpc-status, and its label read `first PUT of each object dies after 1 M…` with room
    /// to spare. The marker is the legend's ⚡ (drawn by the same function), the label is the
    /// whole rule when it fits and cut at a word when not, and the tooltip has the comment.
    #[test]
    fn a_fault_is_drawn_as_the_legend_says_and_its_rule_is_named_whole() {
        let rule = "first PUT of each object dies after 1 MiB";
        let flow = FlowSummary {
            id: 1,
            leg: Some(crate::direction::Leg::Client),
            client: "127.0.0.1:1".into(),
            server: "127.0.0.1:2".into(),
            opened_ns: 0,
            saw_syn: true,
            http: true,
            exchanges: Vec::new(),
            faults: Vec::new(),
            h2: false,
            connection: None,
        };
        let up = Direction::ClientToUpstream;
        let mut timeline = FlowTimeline::new(1, 0);
        timeline.data(up, 0, 1000, 10);
        let comment =
            format!(r#"faultline: rule "{rule}" truncate client->upstream after 1048576 bytes"#);
        // At the right edge, as a fault at the connection's end is.
        timeline.event(up, 1000, 1_000, EventKind::Fault(comment.clone()));
        let svg = render(
            "c",
            &[LegView {
                flow: &flow,
                timeline: &timeline,
                exchanges: Vec::new(),
                streams: Vec::new(),
                goaways: Vec::new(),
            }],
        );
        let fault = svg
            .split(r#"<g class="fault" "#)
            .nth(1)
            .expect("a fault marker");
        let fault = &fault[..fault.find("</g>").expect("its end")];
        let x = WIDTH - RIGHT;
        let y = row(LANE / 2.0, up);
        assert!(
            fault.contains(&format!(r#"<path d="{}"/>"#, fault_shape(x, y))),
            "{fault}"
        );
        assert_ne!(fault_shape(x, y), frame_shape(x, y));
        assert!(
            fault.contains(&format!(">⚡ {rule}</text>")),
            "the whole rule: {fault}"
        );
        assert!(
            fault.contains(&format!("<title>{} ", escape(&comment))),
            "{fault}"
        );
        let legend = legend();
        assert!(
            legend.contains(&format!(
                r#"<g class="fault"><path d="{}"/></g></svg> fault,</i>"#,
                fault_shape(0.0, 0.0)
            )),
            "{legend}"
        );
        for frame in ["rst-stream", "goaway", "grpc-status"] {
            assert!(
                legend.contains(&format!(
                    r#"<g class="{frame}"><path d="{}"/>"#,
                    frame_shape(0.0, 0.0)
                )),
                "{legend}"
            );
        }
        assert_eq!(
            legend.matches(&frame_shape(0.0, 0.0)).count(),
            3,
            "{legend}"
        );
        // Cut, a label ends at a word; a single long word is cut inside it.
        assert_eq!(clip(rule, 40), "first PUT of each object dies after 1…");
        assert_eq!(clip(rule, 80), rule);
        assert_eq!(clip("abcdefghijkl", 6), "abcde…");
    }

    fn read_stream(id: u32, opened_ns: u64, response: (u64, u64)) -> H2Stream {
        H2Stream {
            flow: 0,
            leg: Some(crate::direction::Leg::Client),
            stream: id,
            opened_ns,
            method: Some("POST".into()),
            path: Some("/google.bytestream.ByteStream/Read".into()),
            authority: None,
            status: Some(200),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            trailers: Vec::new(),
            ignored_after_reset: Vec::new(),
            grpc_status: Some(0),
            grpc_status_name: Some("OK".into()),
            grpc_message: None,
            grpc_status_ns: Some(response.1),
            response_ns: Some(response.0),
            response_last_ns: Some(response.1),
            request_bytes: 90,
            response_bytes: 1000,
            request_messages: 1,
            response_messages: 1,
            request_ended: true,
            response_ended: true,
            response_content_length: None,
            response_cut: false,
            reset: None,
            faults: Vec::new(),
        }
    }

    /// The trial's gRPC timeline: three Reads opened at once were labelled "stream 1" only, no
    /// HTTP/2 fault named its rule (the session's notes end with it), and responses had no marker.
    #[test]
    fn simultaneous_streams_share_a_label_and_h2_faults_name_their_rule() {
        let flow = FlowSummary {
            id: 0,
            leg: Some(crate::direction::Leg::Client),
            client: "127.0.0.1:1".into(),
            server: "127.0.0.1:2".into(),
            opened_ns: 0,
            saw_syn: true,
            http: false,
            exchanges: Vec::new(),
            faults: Vec::new(),
            h2: true,
            connection: None,
        };
        let mut timeline = FlowTimeline::new(0, 0);
        timeline.event(
            Direction::ClientToUpstream,
            10,
            40_000,
            EventKind::Fault(
                r#"faultline: RST_STREAM(CANCEL) on stream 3 to the upstream (rule "cut <b>")"#
                    .into(),
            ),
        );
        timeline.event(Direction::ClientToUpstream, 20, 100_000, EventKind::Fin);
        let streams = [
            read_stream(1, 1_000, (5_000, 60_000)),
            read_stream(3, 1_100, (5_100, 40_000)),
            read_stream(5, 1_200, (5_200, 62_000)),
            read_stream(7, 80_000, (81_000, 90_000)),
        ];
        let svg = render(
            "c",
            &[LegView {
                flow: &flow,
                timeline: &timeline,
                exchanges: Vec::new(),
                streams: streams.iter().collect(),
                goaways: Vec::new(),
            }],
        );
        for expected in [
            ">streams 1, 3, 5 ByteStream/Read</text>",
            ">stream 7 ByteStream/Read</text>",
            r#"<g class="fault" data-rule="cut &lt;b&gt;""#,
            ">⚡ cut &lt;b&gt;</text>",
            r#"<g class="response h2" data-stream="1"><title>stream 1: status 200, 1000 DATA bytes</title><rect"#,
            r#"<g class="response h2" data-stream="7">"#,
        ] {
            assert!(svg.contains(expected), "no {expected:?} in:\n{svg}");
        }
        assert_eq!(svg.matches(r#"<g class="request h2""#).count(), 4);
        // Streams 1 and 5 end `grpc-status 0 OK` close together: one label, two markers.
        assert_eq!(svg.matches(r#"<g class="grpc-status""#).count(), 4);
        assert_eq!(svg.matches(">grpc-status 0 OK</text>").count(), 3, "{svg}");
        assert_eq!(svg.matches(r#"<g class="response h2""#).count(), 4);
    }

    #[test]
    fn labels_take_free_rows_or_are_left_out() {
        let mut bands = Bands::new(&[-10.0, -20.0]);
        assert_eq!(bands.place(200.0, "abc"), Some((209.0, "start", -10.0)));
        assert_eq!(bands.place(205.0, "abc"), Some((214.0, "start", -20.0)));
        assert_eq!(bands.place(210.0, "abc"), None, "both rows taken here");
        assert_eq!(bands.place(400.0, "abc"), Some((409.0, "start", -10.0)));
        // Placed out of time order, a label still takes the first row where it fits.
        assert_eq!(bands.place(300.0, "abc"), Some((309.0, "start", -10.0)));
        let (x, anchor, _) = bands.place(WIDTH - RIGHT, "abc").expect("room");
        assert_eq!((x, anchor), (WIDTH - RIGHT - 7.0, "end"), "kept inside");
    }

    #[test]
    fn ticks_and_spans_read_well() {
        assert_eq!(tick_step(8_000_000), 1_000_000);
        assert_eq!(tick_step(15_000_000), 2_000_000);
        assert_eq!(tick_step(1), 1);
        assert_eq!(format_span(1_500_000), "1.5 ms");
        assert_eq!(format_span(0), "0");
        assert_eq!(format_span(1), "1 ns");
        assert_eq!(format_span(2_000_000_000), "2 s");
        assert_eq!(format_span(250_000), "250 µs");
    }
}
