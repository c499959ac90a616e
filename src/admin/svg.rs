//! The routing DAG as an SVG picture, drawn by isobar itself (no Graphviz on the machine, no script
//! in the browser): four columns, hosts → routes → clusters → endpoints, with an edge for each link.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::v1;

/// Rows drawn per column; the rest is summarised in one last row, so a 10,000-host picture stays a
/// picture.
pub const MAX_ROWS: usize = 400;

const ROW: usize = 24;
const BOX: usize = 18;
const CHAR: usize = 7;
const GAP: usize = 80;
const PAD: usize = 12;

/// One column of boxes.
struct Column {
    title: &'static str,
    labels: Vec<String>,
    /// Labels left out beyond [`MAX_ROWS`].
    hidden: usize,
    /// Index by label, for edges.
    index: BTreeMap<String, usize>,
    x: usize,
    width: usize,
}

impl Column {
    fn new(title: &'static str, all: Vec<String>) -> Self {
        let hidden = all.len().saturating_sub(MAX_ROWS);
        let labels: Vec<String> = all.into_iter().take(MAX_ROWS).collect();
        let index = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        Column {
            title,
            labels,
            hidden,
            index,
            x: 0,
            width: 0,
        }
    }

    fn rows(&self) -> usize {
        self.labels.len() + usize::from(self.hidden > 0)
    }

    fn y(row: usize) -> usize {
        PAD + 2 * ROW + row * ROW
    }
}

/// The picture of `snapshot`'s hosts, routes, clusters and endpoints.
pub fn render(snapshot: &v1::Snapshot) -> String {
    let host_label = |vh: &v1::VirtualHost| {
        format!(
            "{}{}",
            if vh.secure { "https://" } else { "http://" },
            vh.host
        )
    };
    let route_label = |vh: &v1::VirtualHost, r: &v1::Route| format!("{}{}", vh.host, r.path);
    let mut hosts = Vec::new();
    let mut routes = Vec::new();
    let mut edges: Vec<(usize, String, String)> = Vec::new();
    for vh in &snapshot.virtual_hosts {
        hosts.push(host_label(vh));
        for r in &vh.routes {
            routes.push(route_label(vh, r));
            edges.push((0, host_label(vh), route_label(vh, r)));
            for c in &r.clusters {
                edges.push((1, route_label(vh, r), c.cluster.clone()));
            }
        }
        for c in &vh.tcp_proxy {
            edges.push((1, host_label(vh), c.cluster.clone()));
        }
    }
    routes.sort();
    routes.dedup();
    let clusters: Vec<String> = snapshot.clusters.iter().map(|c| c.name.clone()).collect();
    let mut endpoints: Vec<String> = Vec::new();
    for c in &snapshot.clusters {
        for e in &c.endpoints {
            endpoints.push(e.clone());
            edges.push((2, c.name.clone(), e.clone()));
        }
    }
    endpoints.sort();
    endpoints.dedup();
    let mut columns = [
        Column::new("hosts", hosts),
        Column::new("routes", routes),
        Column::new("clusters", clusters),
        Column::new("endpoints", endpoints),
    ];
    let mut x = PAD;
    for c in &mut columns {
        let longest = c
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        c.width = (longest.max(c.title.len()) * CHAR + 2 * PAD).min(420);
        c.x = x;
        x += c.width + GAP;
    }
    let width = x - GAP + PAD;
    let rows = columns.iter().map(Column::rows).max().unwrap_or(0);
    let height = Column::y(rows) + PAD;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">"#
    );
    svg.push_str(r##"<style>.box{fill:#eef3fb;stroke:#5b7db1}.tls{fill:#e8f6ec;stroke:#4b9a62}.edge{fill:none;stroke:#9aa9bf}.more{fill:#fff;stroke:#bbb;stroke-dasharray:3 2}</style>"##);
    // A TCP proxy host links straight to clusters: a host → cluster edge skips the routes column.
    let edge_column = |kind: usize, from: &str| -> Option<usize> {
        if kind == 1 && !columns[1].index.contains_key(from) {
            columns[0].index.get(from).map(|_| 0)
        } else {
            Some(kind)
        }
    };
    for (kind, from, to) in &edges {
        let Some(left) = edge_column(*kind, from) else {
            continue;
        };
        let right = kind + 1;
        let (Some(&a), Some(&b)) = (columns[left].index.get(from), columns[right].index.get(to))
        else {
            continue;
        };
        let x1 = columns[left].x + columns[left].width;
        let x2 = columns[right].x;
        let y1 = Column::y(a) + BOX / 2;
        let y2 = Column::y(b) + BOX / 2;
        let mid = (x1 + x2) / 2;
        let _ = write!(
            svg,
            r#"<path class="edge" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"/>"#
        );
    }
    for c in &columns {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
            c.x,
            PAD + ROW / 2,
            c.title
        );
        for (i, label) in c.labels.iter().enumerate() {
            let class = if label.starts_with("https://") {
                "box tls"
            } else {
                "box"
            };
            let shown = shorten(label, (c.width - PAD) / CHAR);
            let _ = write!(
                svg,
                r#"<g><title>{}</title><rect class="{class}" x="{}" y="{}" width="{}" height="{BOX}" rx="3"/><text x="{}" y="{}">{}</text></g>"#,
                escape(label),
                c.x,
                Column::y(i),
                c.width,
                c.x + PAD / 2,
                Column::y(i) + BOX - 5,
                escape(&shown)
            );
        }
        if c.hidden > 0 {
            let y = Column::y(c.labels.len());
            let _ = write!(
                svg,
                r#"<rect class="more" x="{}" y="{y}" width="{}" height="{BOX}" rx="3"/><text x="{}" y="{}">… {} more</text>"#,
                c.x,
                c.width,
                c.x + PAD / 2,
                y + BOX - 5,
                c.hidden
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// `label` cut to `max` characters with an ellipsis.
fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        return label.to_string();
    }
    let kept: String = label.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Text as XML character data.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[path = "svg_tests.rs"]
mod tests;
