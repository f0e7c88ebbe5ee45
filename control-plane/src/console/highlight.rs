//! Syntax colouring for pack YAML and unified diffs, server-side: a line
//! scanner is all a pack needs (keys, scalars, comments), and it keeps the
//! page free of a JavaScript highlighter. Output is escaped HTML.

use serde::Serialize;

/// One line of a highlighted file: its number, its HTML, and whether a
/// validation error points at it.
#[derive(Debug, Serialize)]
pub struct Line {
    pub number: usize,
    pub html: String,
    pub error: bool,
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
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

fn span(class: &str, text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("<span class=\"{class}\">{}</span>", escape(text))
    }
}

/// Where a comment starts: a `#` at the start or after a space, outside
/// quotes.
fn comment_start(line: &str) -> Option<usize> {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

fn scalar(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return escape(text);
    }
    let lead = &text[..text.len() - text.trim_start().len()];
    let trail = &text[text.trim_end().len()..];
    let class = if t.starts_with('"') || t.starts_with('\'') {
        "str"
    } else if t.parse::<f64>().is_ok() {
        "num"
    } else if matches!(t, "true" | "false" | "null" | "~") {
        "lit"
    } else if t.starts_with(['[', '{', '|', '>', '&', '*']) {
        "punct"
    } else {
        "val"
    };
    format!("{}{}{}", escape(lead), span(class, t), escape(trail))
}

fn yaml_line(line: &str) -> String {
    let (code, comment) = match comment_start(line) {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, ""),
    };
    let indent_len = code.len() - code.trim_start().len();
    let (indent, mut rest) = code.split_at(indent_len);
    let mut html = escape(indent);
    if let Some(after) = rest.strip_prefix("- ") {
        html.push_str(&span("punct", "- "));
        rest = after;
    } else if rest == "-" {
        html.push_str(&span("punct", "-"));
        rest = "";
    }
    // `key: value` where the key is plain or quoted.
    let key_end = rest
        .find(": ")
        .or_else(|| rest.strip_suffix(':').map(|k| k.len()))
        .filter(|&i| !rest[..i].contains(['{', '[', ',']));
    match key_end {
        Some(i) => {
            html.push_str(&span("key", &rest[..i]));
            html.push_str(&span("punct", ":"));
            html.push_str(&scalar(&rest[i + 1..]));
        }
        None => html.push_str(&scalar(rest)),
    }
    html.push_str(&span("comment", comment));
    html
}

/// Every line of `body`, coloured, with `error_lines` (1-based) marked.
pub fn yaml(body: &str, error_lines: &[u64]) -> Vec<Line> {
    body.lines()
        .enumerate()
        .map(|(i, l)| Line {
            number: i + 1,
            html: yaml_line(l),
            error: error_lines.contains(&((i + 1) as u64)),
        })
        .collect()
}

/// A unified diff's lines, each with its class (`add`, `del`, `hunk`,
/// `file`, `ctx`).
#[derive(Debug, Serialize)]
pub struct DiffLine {
    pub class: &'static str,
    pub text: String,
}

pub fn diff(text: &str) -> Vec<DiffLine> {
    text.lines()
        .map(|l| DiffLine {
            class: if l.starts_with("+++") || l.starts_with("---") {
                "file"
            } else if l.starts_with('+') {
                "add"
            } else if l.starts_with('-') {
                "del"
            } else if l.starts_with("@@") {
                "hunk"
            } else {
                "ctx"
            },
            text: l.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_comments_get_their_classes() {
        let html = yaml_line("  provider: huggingface:chat:org/m  # the model");
        assert_eq!(
            html,
            "  <span class=\"key\">provider</span><span class=\"punct\">:</span> \
             <span class=\"val\">huggingface:chat:org/m</span>  \
             <span class=\"comment\"># the model</span>"
        );
        assert!(
            yaml_line("    - id: chat")
                .starts_with("    <span class=\"punct\">- </span><span class=\"key\">id</span>")
        );
        assert!(yaml_line("  threshold: 0.8").contains("<span class=\"num\">0.8</span>"));
        assert!(
            yaml_line("  url: \"http://x/#frag\"")
                .contains("<span class=\"str\">&quot;http://x/#frag&quot;</span>")
        );
    }

    #[test]
    fn markup_in_a_pack_is_escaped() {
        let html = yaml_line("  note: <script>alert(1)</script>");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn error_lines_are_marked_and_diff_lines_classed() {
        let lines = yaml("a: 1\nb: 2\n", &[2]);
        assert_eq!((lines[0].error, lines[1].error), (false, true));
        let d = diff("--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n z");
        let classes: Vec<_> = d.iter().map(|l| l.class).collect();
        assert_eq!(classes, ["file", "file", "hunk", "del", "add", "ctx"]);
    }
}
