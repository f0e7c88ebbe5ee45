//! Gateway labels and deployment selectors: `k=v` pairs, comma-separated.
//! The gateway's `--labels` and the control plane's selectors are parsed by
//! this one function, so a label the gateway accepts is one a selector can
//! match.

use std::collections::BTreeMap;

/// Parses `k=v[,k=v…]` (whitespace around keys and values trimmed, empty
/// items skipped; a later key replaces an earlier one). The error names the
/// offending item.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("'{pair}' is not of the form key=value"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn pairs_parse_trimmed_and_errors_name_the_item() {
        let l = parse(" env=prod , region = eu,,").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l["region"], "eu");
        assert_eq!(parse("").unwrap().len(), 0);
        assert_eq!(
            parse("env").unwrap_err(),
            "'env' is not of the form key=value"
        );
        assert!(parse("=x").is_err());
    }
}
