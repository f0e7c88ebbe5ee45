//! The benign files the examples read: the prompt-injection training data
//! (`text,label,family` CSV).

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/training/prompt_injection/data"
);

/// `(text, family)` for every row of `file`.
pub fn rows(file: &str) -> Vec<(String, String)> {
    let path = format!("{DATA}/{file}");
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}; restore it with git"));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{path}: {e}"));
            (r[0].to_string(), r[2].to_string())
        })
        .collect()
}
