//! Loose-to-strict helpers: read typed fields out of a marked YAML tree,
//! collecting *every* problem with its full key path instead of stopping at
//! the first one.

use super::yaml::{Mark, Node, Value};
use std::fmt;

/// One problem in a pack, located by key path and `line:column`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigError {
    /// Full key path, e.g. `providers.targets[1].secret_key_ref.env`.
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, path, self.message
        )
    }
}

/// Collects errors and warnings while a pack is validated.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl Diagnostics {
    pub fn error(&mut self, path: &str, mark: Mark, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_string(),
            line: mark.line,
            column: mark.col,
            message: message.into(),
        });
    }

    pub fn warn(&mut self, path: &str, mark: Mark, message: impl Into<String>) {
        self.warnings.push(ConfigError {
            path: path.to_string(),
            line: mark.line,
            column: mark.col,
            message: message.into(),
        });
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Suggests the closest of `known` to `given`, if any is close enough to be a typo.
pub fn closest<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&given.to_ascii_lowercase(), k),
                k,
            )
        })
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

pub fn did_you_mean<'a>(given: &str, known: impl IntoIterator<Item = &'a str> + Clone) -> String {
    match closest(given, known.clone()) {
        Some(k) => format!(" (did you mean '{k}'?)"),
        None => {
            let all: Vec<&str> = known.into_iter().collect();
            format!(" (expected one of: {})", all.join(", "))
        }
    }
}

/// Reads the keys of one mapping. Every key asked for becomes "known"; the
/// rest are reported by [`MapReader::finish`] with a suggestion.
pub struct MapReader<'a> {
    pub path: String,
    pub mark: Mark,
    entries: &'a [(String, Mark, Node)],
    known: Vec<&'static str>,
}

impl<'a> MapReader<'a> {
    /// `None` (with an error recorded) when `node` is not a mapping.
    pub fn new(d: &mut Diagnostics, node: &'a Node, path: &str) -> Option<Self> {
        match &node.value {
            Value::Map(entries) => {
                for (i, (k, m, _)) in entries.iter().enumerate() {
                    if entries[..i].iter().any(|(k2, _, _)| k2 == k) {
                        d.error(
                            &join(path, k),
                            *m,
                            format!("duplicate key '{k}'; each key may appear once"),
                        );
                    }
                }
                Some(MapReader {
                    path: path.to_string(),
                    mark: node.mark,
                    entries,
                    known: Vec::new(),
                })
            }
            _ => {
                d.error(
                    path,
                    node.mark,
                    format!("expected a mapping, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The node under `key`; a `null` value counts as absent.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Node> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, n)| n)
            .filter(|n| n.value != Value::Null)
    }

    pub fn required(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<&'a Node> {
        let node = self.get(key);
        if node.is_none() {
            d.error(
                &self.path,
                self.mark,
                format!("missing required key '{key}'"),
            );
        }
        node
    }

    pub fn string(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<String> {
        let path = self.key_path(key);
        self.get(key).and_then(|n| as_string(d, n, &path))
    }

    pub fn required_string(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<String> {
        let path = self.key_path(key);
        self.required(d, key).and_then(|n| as_string(d, n, &path))
    }

    /// The required `id` of a target or group (`what`): letters, digits,
    /// '.', '_' and '-', since ids appear in URLs, metrics and decisions.
    pub fn id(&mut self, d: &mut Diagnostics, what: &str) -> Option<String> {
        let id = self.required_string(d, "id")?;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            let mark = self.get("id").map(|n| n.mark).unwrap_or_default();
            d.error(
                &self.key_path("id"),
                mark,
                format!("{what} id '{id}' may use only letters, digits, '.', '_' and '-'"),
            );
        }
        Some(id)
    }

    pub fn bool(&mut self, d: &mut Diagnostics, key: &'static str, default: bool) -> bool {
        let path = self.key_path(key);
        match self.get(key) {
            None => default,
            Some(n) => match &n.value {
                Value::Scalar {
                    text,
                    quoted: false,
                } if matches!(text.as_str(), "true" | "True" | "TRUE") => true,
                Value::Scalar {
                    text,
                    quoted: false,
                } if matches!(text.as_str(), "false" | "False" | "FALSE") => false,
                _ => {
                    d.error(
                        &path,
                        n.mark,
                        format!("expected true or false, found {}", describe(n)),
                    );
                    default
                }
            },
        }
    }

    /// A number within `[min, max]`.
    pub fn number(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        min: f64,
        max: f64,
    ) -> Option<f64> {
        let path = self.key_path(key);
        let n = self.get(key)?;
        let parsed = match &n.value {
            Value::Scalar {
                text,
                quoted: false,
            } => text.parse::<f64>().ok().filter(|v| v.is_finite()),
            _ => None,
        };
        match parsed {
            Some(v) if v >= min && v <= max => Some(v),
            Some(v) => {
                d.error(
                    &path,
                    n.mark,
                    format!("{v} is out of range: expected a number from {min} to {max}"),
                );
                None
            }
            None => {
                d.error(
                    &path,
                    n.mark,
                    format!("expected a number, found {}", describe(n)),
                );
                None
            }
        }
    }

    pub fn integer(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let path = self.key_path(key);
        let n = self.get(key)?;
        match &n.value {
            Value::Scalar {
                text,
                quoted: false,
            } => match text.parse::<u64>() {
                Ok(v) if v >= min && v <= max => Some(v),
                Ok(v) => {
                    d.error(
                        &path,
                        n.mark,
                        format!("{v} is out of range: expected a whole number from {min} to {max}"),
                    );
                    None
                }
                Err(_) => {
                    d.error(
                        &path,
                        n.mark,
                        format!("expected a whole number, found {}", describe(n)),
                    );
                    None
                }
            },
            _ => {
                d.error(
                    &path,
                    n.mark,
                    format!("expected a whole number, found {}", describe(n)),
                );
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let path = self.key_path(key);
        let n = self.get(key)?;
        let text = as_string(d, n, &path)?;
        match allowed.iter().find(|a| **a == text) {
            Some(a) => Some(a),
            None => {
                d.error(
                    &path,
                    n.mark,
                    format!(
                        "unknown value '{text}'{}",
                        did_you_mean(&text, allowed.iter().copied())
                    ),
                );
                None
            }
        }
    }

    /// A list of strings (a single string is not accepted: it hides typos
    /// such as `entities: EMAIL` meant as a list).
    pub fn string_list(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
    ) -> Option<Vec<(String, Mark)>> {
        let path = self.key_path(key);
        let n = self.get(key)?;
        let Value::Seq(items) = &n.value else {
            d.error(
                &path,
                n.mark,
                format!("expected a list, found {}", n.kind_name()),
            );
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    as_string(d, item, &format!("{path}[{i}]")).map(|s| (s, item.mark))
                })
                .collect(),
        )
    }

    /// Reports every key that was never asked for.
    pub fn finish(self, d: &mut Diagnostics) {
        for (key, mark, _) in self.entries {
            if !self.known.contains(&key.as_str()) {
                d.error(
                    &join(&self.path, key),
                    *mark,
                    format!(
                        "unknown key '{key}'{}",
                        did_you_mean(key, self.known.iter().copied())
                    ),
                );
            }
        }
    }
}

/// A scalar as a string (numbers and booleans are accepted as written, so
/// `version: 1.0` stays `"1.0"`).
pub fn as_string(d: &mut Diagnostics, node: &Node, path: &str) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => {
            d.error(
                path,
                node.mark,
                format!("expected a string, found {}", node.kind_name()),
            );
            None
        }
    }
}

fn describe(n: &Node) -> String {
    match &n.value {
        Value::Scalar { text, .. } => format!("'{text}'"),
        _ => n.kind_name().to_string(),
    }
}

/// The items of a list at `path` (`what`: "targets", "limits"…), or an
/// error saying what was found instead.
pub fn items<'n>(
    d: &mut Diagnostics,
    node: &'n Node,
    path: &str,
    what: &str,
) -> Option<&'n [Node]> {
    match &node.value {
        Value::Seq(items) => Some(items),
        _ => {
            d.error(
                path,
                node.mark,
                format!("expected a list of {what}, found {}", node.kind_name()),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::yaml::parse;

    #[test]
    fn unknown_keys_suggest_the_closest_known_key() {
        let node = parse("nmae: x\nversion: 1\n").unwrap();
        let mut d = Diagnostics::default();
        let mut r = MapReader::new(&mut d, &node, "pack").unwrap();
        r.string(&mut d, "name");
        r.string(&mut d, "version");
        r.finish(&mut d);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].path, "pack.nmae");
        assert!(
            d.errors[0].message.contains("did you mean 'name'"),
            "{}",
            d.errors[0].message
        );
        assert_eq!((d.errors[0].line, d.errors[0].column), (1, 1));
    }

    #[test]
    fn every_bad_field_is_reported() {
        let node = parse("a: maybe\nb: -3\nc: [1]\n").unwrap();
        let mut d = Diagnostics::default();
        let mut r = MapReader::new(&mut d, &node, "").unwrap();
        r.bool(&mut d, "a", false);
        r.integer(&mut d, "b", 0, 10);
        r.string(&mut d, "c");
        r.finish(&mut d);
        let paths: Vec<_> = d.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "b", "c"]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let node = parse("a: 1\na: 2\n").unwrap();
        let mut d = Diagnostics::default();
        MapReader::new(&mut d, &node, "x").unwrap();
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].line, 2);
    }
}
