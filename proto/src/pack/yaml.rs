//! A YAML document as a tree whose every node remembers where it was written.
//!
//! `serde_yaml` reports only the first error and loses positions once a value
//! is deserialised; operators need *every* mistake in a pack with its
//! `line:column`, so validation walks this marked tree instead.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based position in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Mark {
    fn from(m: Marker) -> Self {
        // yaml-rust2 counts columns from 0; editors and compilers count from 1.
        Mark {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A scalar as written; `quoted` scalars are always strings.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys keep their own mark so "unknown key" errors point at the key.
    Map(Vec<(String, Mark, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A syntax error: the text is not YAML at all.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}

/// Parses one YAML document (JSON is accepted too, being YAML). An empty
/// document parses as `Null`.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        mark: (*e.marker()).into(),
        message: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root.unwrap_or(Node {
        value: Value::Null,
        mark: Mark { line: 1, col: 1 },
    }))
}

enum Frame {
    Seq {
        items: Vec<Node>,
        mark: Mark,
        anchor: usize,
    },
    Map {
        entries: Vec<(String, Mark, Node)>,
        pending_key: Option<(String, Mark)>,
        mark: Mark,
        anchor: usize,
    },
}

/// The most nodes a document may expand to, aliases counted at every use.
/// A real pack (20,000 client keys) is a few hundred thousand; nested
/// aliases ("billion laughs") would otherwise grow memory exponentially from
/// a few hundred bytes of text.
const MAX_NODES: usize = 2_000_000;

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// (anchor id, node, the node's size in nodes).
    anchors: Vec<(usize, Node, usize)>,
    root: Option<Node>,
    error: Option<SyntaxError>,
    /// Nodes built so far, each alias counted with its full size.
    nodes: usize,
}

fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(size).sum(),
        Value::Map(entries) => entries.iter().map(|(_, _, n)| size(n)).sum(),
        _ => 0,
    }
}

impl Builder {
    /// Counts `n` more nodes; false (with the error set) once over budget.
    fn spend(&mut self, n: usize, mark: Mark) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            if self.error.is_none() {
                self.error = Some(SyntaxError {
                    mark,
                    message: format!(
                        "the document expands to more than {MAX_NODES} values (through nested \
                         aliases?); write the values out or use fewer aliases"
                    ),
                });
            }
            return false;
        }
        true
    }

    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            let n = size(&node);
            self.anchors.push((anchor, node.clone(), n));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                Some((key, key_mark)) => entries.push((key, key_mark, node)),
                None => match node.value {
                    Value::Scalar { text, .. } => *pending_key = Some((text, node.mark)),
                    Value::Null => *pending_key = Some((String::new(), node.mark)),
                    _ => {
                        if self.error.is_none() {
                            self.error = Some(SyntaxError {
                                mark: node.mark,
                                message:
                                    "mapping keys must be plain strings, not lists or mappings"
                                        .into(),
                            });
                        }
                        // Keep the structure consistent: treat it as an empty key.
                        *pending_key = Some((String::new(), node.mark));
                    }
                },
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        let mark = Mark::from(marker);
        if self.nodes > MAX_NODES {
            return; // already refused: build nothing more
        }
        if matches!(
            ev,
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..)
        ) && !self.spend(1, mark)
        {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let value =
                    if !quoted && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                        Value::Null
                    } else {
                        Value::Scalar { text, quoted }
                    };
                self.push_node(Node { value, mark }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                items: Vec::new(),
                mark,
                anchor,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                entries: Vec::new(),
                pending_key: None,
                mark,
                anchor,
            }),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq {
                    items,
                    mark,
                    anchor,
                }) => self.push_node(
                    Node {
                        value: Value::Seq(items),
                        mark,
                    },
                    anchor,
                ),
                Some(Frame::Map {
                    entries,
                    mark,
                    anchor,
                    ..
                }) => self.push_node(
                    Node {
                        value: Value::Map(entries),
                        mark,
                    },
                    anchor,
                ),
                None => {}
            },
            Event::Alias(id) => {
                let found = self.anchors.iter().rev().find(|(a, ..)| *a == id);
                if let Some(&(_, _, n)) = found
                    && !self.spend(n, mark)
                {
                    return;
                }
                let node = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, ..)| *a == id)
                    .map(|(_, n, _)| n.clone());
                let node = node.unwrap_or(Node {
                    value: Value::Null,
                    mark,
                });
                self.push_node(node, 0);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_aliases_are_refused_before_they_grow() {
        // Nine levels of ten aliases: 10^9 values from a few hundred bytes.
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&doc).expect_err("an alias bomb must not parse");
        assert!(err.message.contains("nested aliases"), "{}", err.message);
        assert!(
            err.mark.line >= 6,
            "points at the alias that crossed the budget: {:?}",
            err.mark
        );
        // Aliases within the budget still work.
        let ok = parse("base: &b {k: v}\nuse: *b\n").unwrap();
        let Value::Map(top) = &ok.value else { panic!() };
        assert_eq!(top[1].2, top[0].2);
    }

    #[test]
    fn marks_point_at_keys_and_values() {
        let node = parse("a:\n  b: 1\n  c: [x, 'y']\n").unwrap();
        let Value::Map(top) = &node.value else {
            panic!("not a map")
        };
        assert_eq!(top[0].0, "a");
        assert_eq!(top[0].1, Mark { line: 1, col: 1 });
        let Value::Map(inner) = &top[0].2.value else {
            panic!("not a map")
        };
        assert_eq!(inner[1].0, "c");
        assert_eq!(inner[1].1, Mark { line: 3, col: 3 });
        let Value::Seq(items) = &inner[1].2.value else {
            panic!("not a seq")
        };
        assert_eq!(
            items[1].value,
            Value::Scalar {
                text: "y".into(),
                quoted: true
            }
        );
        assert_eq!(items[1].mark.line, 3);
    }

    #[test]
    fn json_is_accepted_and_null_recognised() {
        let node = parse(r#"{"a": null, "b": "1"}"#).unwrap();
        let Value::Map(top) = &node.value else {
            panic!("not a map")
        };
        assert_eq!(top[0].2.value, Value::Null);
        assert_eq!(
            top[1].2.value,
            Value::Scalar {
                text: "1".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.mark.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }

    #[test]
    fn aliases_resolve_to_the_anchored_node() {
        let node = parse("base: &b {x: 1}\ncopy: *b\n").unwrap();
        let Value::Map(top) = &node.value else {
            panic!("not a map")
        };
        assert_eq!(top[0].2.value, top[1].2.value);
    }
}

impl Node {
    /// The document as JSON, scalars typed by the YAML core schema (an
    /// unquoted `true`, `12` or `0.5` becomes a boolean or number; quoted
    /// scalars stay strings). The control plane stores this as a version's
    /// parsed form so operators can query packs without a YAML parser.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Scalar { text, quoted: true } => J::String(text.clone()),
            Value::Scalar {
                text,
                quoted: false,
            } => match text.as_str() {
                "true" | "True" | "TRUE" => J::Bool(true),
                "false" | "False" | "FALSE" => J::Bool(false),
                "null" | "Null" | "NULL" | "~" => J::Null,
                t => t
                    .parse::<i64>()
                    .map(J::from)
                    .ok()
                    .or_else(|| {
                        t.parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                            .map(J::Number)
                    })
                    .unwrap_or_else(|| J::String(t.to_string())),
            },
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, _, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod json_tests {
    #[test]
    fn to_json_types_scalars_like_yaml() {
        let n = super::parse("a: 1\nb: '1'\nc: [true, 0.5, x, ~]\n").unwrap();
        assert_eq!(
            n.to_json(),
            serde_json::json!({"a": 1, "b": "1", "c": [true, 0.5, "x", null]})
        );
    }
}
