//! The audit page's chart: requests and blocks per policy, per hour, over
//! the chosen window, drawn as inline SVG on the server (no chart library
//! in the browser).

use std::collections::BTreeMap;
use std::fmt::Write;

use sqlx::PgPool;
use time::OffsetDateTime;

use super::highlight::escape;

/// Requests and blocks per policy in each hour of the last `hours`.
pub struct Activity {
    start: OffsetDateTime,
    hours: usize,
    requests: Vec<i64>,
    blocks: BTreeMap<String, Vec<i64>>,
}

impl Activity {
    pub async fn load(pool: &PgPool, hours: i64) -> Result<Activity, sqlx::Error> {
        let now = OffsetDateTime::now_utc();
        let top = now
            .replace_minute(0)
            .and_then(|t| t.replace_second(0))
            .and_then(|t| t.replace_nanosecond(0))
            .unwrap_or(now);
        let start = top - time::Duration::hours(hours - 1);
        let requests: Vec<(OffsetDateTime, i64)> = sqlx::query_as(
            "SELECT date_trunc('hour', time), count(*) FROM audit_records
             WHERE time >= $1 GROUP BY 1 ORDER BY 1",
        )
        .bind(start)
        .fetch_all(pool)
        .await?;
        let blocks: Vec<(OffsetDateTime, String, i64)> = sqlx::query_as(
            "SELECT date_trunc('hour', time), d->>'policy', count(*)
             FROM audit_records, jsonb_array_elements(record->'decisions') d
             WHERE time >= $1 AND d->>'outcome' = 'block' GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind(start)
        .fetch_all(pool)
        .await?;
        let n = hours as usize;
        let slot = |t: OffsetDateTime| ((t - start).whole_hours().max(0) as usize).min(n - 1);
        let mut a = Activity {
            start,
            hours: n,
            requests: vec![0; n],
            blocks: BTreeMap::new(),
        };
        for (t, c) in requests {
            a.requests[slot(t)] += c;
        }
        for (t, policy, c) in blocks {
            a.blocks.entry(policy).or_insert_with(|| vec![0; n])[slot(t)] += c;
        }
        Ok(a)
    }

    pub fn total_requests(&self) -> i64 {
        self.requests.iter().sum()
    }

    pub fn total_blocks(&self) -> Vec<(String, i64)> {
        self.blocks
            .iter()
            .map(|(p, v)| (p.clone(), v.iter().sum()))
            .collect()
    }

    /// The chart: one grey bar of requests per hour, the hour's blocks
    /// stacked beside it in one colour per policy, and a legend.
    pub fn svg(&self) -> String {
        const COLOURS: [&str; 6] = [
            "#c0392b", "#8e44ad", "#d35400", "#2c3e50", "#16a085", "#b7950b",
        ];
        let (w, h, pad) = (760.0_f64, 180.0_f64, 28.0_f64);
        let max = self
            .requests
            .iter()
            .copied()
            .chain((0..self.hours).map(|i| self.blocks.values().map(|v| v[i]).sum()))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let slot_w = (w - pad) / self.hours as f64;
        let bar_w = (slot_w / 2.0 - 1.0).max(1.0);
        let y = |v: f64| h - pad - (h - 2.0 * pad) * v / max;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg class=\"chart\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"requests and blocks per hour\">",
            h + 24.0
        );
        let _ = write!(
            s,
            "<line x1=\"{pad}\" y1=\"{0}\" x2=\"{w}\" y2=\"{0}\" stroke=\"#999\"/>\
             <text x=\"2\" y=\"{1}\" font-size=\"10\">{max}</text>",
            h - pad,
            pad + 4.0
        );
        for i in 0..self.hours {
            let x = pad + i as f64 * slot_w;
            let r = self.requests[i] as f64;
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"#b0bec5\"><title>{} requests</title></rect>",
                y(r),
                h - pad - y(r),
                self.requests[i]
            );
            let mut base = 0.0;
            for (k, (policy, counts)) in self.blocks.iter().enumerate() {
                let c = counts[i] as f64;
                if c == 0.0 {
                    continue;
                }
                let _ = write!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} blocked by {}</title></rect>",
                    x + bar_w + 1.0,
                    y(base + c),
                    y(base) - y(base + c),
                    COLOURS[k % COLOURS.len()],
                    counts[i],
                    escape(policy)
                );
                base += c;
            }
            if i % 4 == 0 {
                let t = self.start + time::Duration::hours(i as i64);
                let _ = write!(
                    s,
                    "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\">{:02}:00</text>",
                    h - pad + 14.0,
                    t.hour()
                );
            }
        }
        let mut lx = pad;
        let _ = write!(
            s,
            "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#b0bec5\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">requests</text>",
            h + 8.0,
            lx + 14.0,
            h + 17.0
        );
        lx += 80.0;
        for (k, policy) in self.blocks.keys().enumerate() {
            let _ = write!(
                s,
                "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">blocked: {}</text>",
                h + 8.0,
                COLOURS[k % COLOURS.len()],
                lx + 14.0,
                h + 17.0,
                escape(policy)
            );
            lx += 150.0;
        }
        s.push_str("</svg>");
        s
    }
}
