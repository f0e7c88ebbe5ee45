//! Property-based ("fuzz") tests of the pack loader: whatever an editor
//! sends, `load` answers Ok or a list of errors that each say where and
//! what, and never panics. Inputs are the shipped example packs mutated
//! line by line (deleted, repeated, re-indented, values swapped for odd
//! scalars, anchors and aliases, raw bytes) and arbitrary text.
//! `SLUICE_FUZZ_CASES` sets the cases per property (256 by default);
//! failures are kept in `proptest-regressions/` and replayed first.

use proptest::prelude::*;

use super::load;

const EXAMPLES: [&str; 6] = [
    include_str!("../../../deploy/examples/policy-config.yaml"),
    include_str!("../../../deploy/examples/huggingface-governed.yaml"),
    include_str!("../../../deploy/examples/huggingface-routing.yaml"),
    include_str!("../../../deploy/examples/groups-and-budgets.yaml"),
    include_str!("../../../deploy/examples/fleet-limits.yaml"),
    include_str!("../../../deploy/examples/local-models.yaml"),
];

fn config() -> ProptestConfig {
    let cases = std::env::var("SLUICE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok());
    ProptestConfig::with_cases(cases.unwrap_or(256))
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete,
    Repeat,
    Indent(usize),
    Dedent,
    Value(String),
    Insert(String),
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("~".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("-1".to_string()),
        Just("1e999".to_string()),
        Just("18446744073709551616".to_string()),
        Just("0.0000001".to_string()),
        Just("yes".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("*a".to_string()),
        Just("&a [*a, *a]".to_string()),
        Just("!!binary aGVsbG8=".to_string()),
        Just("|\n  multi\n  line".to_string()),
        "[ -~]{0,16}",
        "\\PC{0,8}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Delete),
        Just(Mutation::Repeat),
        (1usize..6).prop_map(Mutation::Indent),
        Just(Mutation::Dedent),
        scalar().prop_map(Mutation::Value),
        prop_oneof![
            "[ -~]{0,30}",
            Just("x: &a [1, 2]".to_string()),
            Just("y: [*a, *a, *a, *a]".to_string()),
            Just("- - - - - - - - - - - -".to_string()),
            Just("? complex key".to_string()),
            Just("%YAML 1.2".to_string()),
            Just("---".to_string()),
            Just("...".to_string()),
        ]
        .prop_map(Mutation::Insert),
    ]
}

fn mutate(text: &str, edits: &[(prop::sample::Index, Mutation)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (at, m) in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = at.index(lines.len());
        match m {
            Mutation::Delete => {
                lines.remove(i);
            }
            Mutation::Repeat => lines.insert(i, lines[i].clone()),
            Mutation::Indent(n) => lines[i].insert_str(0, &" ".repeat(*n)),
            Mutation::Dedent => lines[i] = lines[i].trim_start().to_string(),
            Mutation::Value(v) => {
                if let Some(colon) = lines[i].find(": ") {
                    lines[i].truncate(colon + 2);
                    lines[i].push_str(v);
                } else {
                    lines[i].push_str(v);
                }
            }
            Mutation::Insert(s) => lines.insert(i, s.clone()),
        }
    }
    lines.join("\n")
}

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(errors) = load(text) {
        prop_assert!(!errors.0.is_empty());
        // Lines as YAML counts them: a lone "\r" breaks a line too (found by
        // this test: "\x01\r\r\r\x01:\t" has its error on line 4).
        let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count() + 2;
        for e in &errors.0 {
            prop_assert!(!e.message.trim().is_empty(), "an error without a message");
            prop_assert!(e.line <= lines, "{e}: line {} of {lines}", e.line);
        }
        // The error list renders (the API and the CLI print it).
        prop_assert!(errors.to_string().contains("error"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_example_packs_load_or_explain(
        which in 0..EXAMPLES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..6),
    ) {
        check(&mutate(EXAMPLES[which], &edits))?;
    }

    #[test]
    fn arbitrary_text_loads_or_explains(text in "\\PC{0,400}") {
        check(&text)?;
    }

    #[test]
    fn arbitrary_bytes_as_text_load_or_explain(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }
}

#[test]
fn every_example_pack_loads() {
    for (i, text) in EXAMPLES.iter().enumerate() {
        if let Err(e) = load(text) {
            panic!("example {i} does not load: {e}");
        }
    }
}
