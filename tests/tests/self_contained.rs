//! The repository carries everything its builds, tests and scripts read.
//!
//! A user's clone has nothing beside it, so no file may point outside the
//! clone: not the development machine's reading folder next to it, not an
//! absolute path into it, and no `include_str!`/`include_bytes!`/`concat!`
//! path that climbs above the repository root. Docs may *describe* relative
//! paths inside the repository (`../../base` in a kustomization is fine); this
//! test resolves each `../` chain it finds against the file's own folder and
//! fails when the result lands outside the root.

use std::path::{Component, Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

/// Every file of the checkout that git would track: walks the tree and
/// skips build output, VCS data and local virtualenvs.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == ".git" || name == "target" || name.starts_with(".venv") || name == "node_modules"
        {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => files(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// Lexically resolves `rel` against `base` (no filesystem access, so a
/// path to something missing still resolves). `None` when it climbs above
/// `/`.
fn resolve(base: &Path, rel: &str) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::ParentDir if !out.pop() => return None,
            Component::ParentDir => {}
            Component::Normal(p) => out.push(p),
            _ => {}
        }
    }
    Some(out)
}

/// The `../`-chains in a line: each maximal run of `../` segments and the
/// segment after it.
fn parent_chains(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while let Some(pos) = line[i..].find("../") {
        let start = i + pos;
        // Only the start of a chain: not preceded by a path character.
        let prev = start.checked_sub(1).map(|p| bytes[p]);
        if matches!(prev, Some(b'.') | Some(b'/'))
            || prev.is_some_and(|b| b.is_ascii_alphanumeric())
        {
            i = start + 3;
            continue;
        }
        let mut end = start;
        while line[end..].starts_with("../") {
            end += 3;
        }
        let tail = line[end..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._-/".contains(c)))
            .map_or(line.len(), |n| end + n);
        out.push(&line[start..tail]);
        i = tail.max(start + 3);
    }
    out
}

#[test]
fn no_file_refers_to_a_path_outside_the_clone() {
    let root = root();
    let mut all = Vec::new();
    files(&root, &mut all);
    assert!(
        all.len() > 100,
        "walked only {} files under {}",
        all.len(),
        root.display()
    );
    // Spelled in pieces so this file does not match itself.
    let sibling = ["..", "/shared"].concat();
    let absolute = ["/work", "/shared"].concat();
    let mut problems = Vec::new();
    for path in &all {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue; // binary assets
        };
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        let dir = path.parent().unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains(&sibling) || line.contains(&absolute) {
                problems.push(format!(
                    "{rel}:{}: names the development machine's reading folder: {}",
                    n + 1,
                    line.trim()
                ));
                continue;
            }
            for chain in parent_chains(line) {
                // Resolved against the file's own folder, as Rust's
                // include paths are; for other files it is the natural
                // reading and never lands above the crate root.
                match resolve(dir, chain) {
                    Some(p) if p.starts_with(&root) => {}
                    _ => problems.push(format!(
                        "{rel}:{}: `{chain}` resolves outside the repository",
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "files refer to paths outside the clone (a user's clone has nothing beside it; \
         copy what is needed into the repository):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_sees_what_it_should() {
    let root = root();
    let inside = root.join("guardrails/src/content");
    assert!(
        resolve(&inside, "../../assets/content/categories.bin")
            .unwrap()
            .starts_with(&root)
    );
    let climbs = root.join("guardrails/src/prompt_injection");
    assert!(
        !resolve(&climbs, &format!("{}elsewhere/data", "../".repeat(4)))
            .unwrap()
            .starts_with(&root)
    );
    assert_eq!(
        parent_chains(r#"include_str!("../../training/x.csv"); a/../b ../c"#),
        vec!["../../training/x.csv", "../c"]
    );
}

/// Every file or folder ARCHITECTURE.md names exists: a name resolves if
/// some path in the repository (inside the crate of the section it appears
/// in, for the code map) is it or ends with it.
#[test]
fn architecture_md_names_only_paths_that_exist() {
    let root = root();
    let mut all = Vec::new();
    files(&root, &mut all);
    let mut paths: Vec<String> = Vec::new();
    for f in &all {
        let rel = f.strip_prefix(&root).unwrap();
        paths.push(rel.display().to_string());
        for dir in rel.ancestors().skip(1) {
            if !dir.as_os_str().is_empty() {
                paths.push(format!("{}/", dir.display()));
            }
        }
    }
    paths.sort();
    paths.dedup();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    // Not .json: the doc names model files (`modules.json`) that live in a
    // model folder, not in the repository.
    const EXTENSIONS: [&str; 11] = [
        ".rs", ".md", ".yaml", ".yml", ".sql", ".proto", ".toml", ".py", ".txt", ".bin", ".csv",
    ];
    let mut section = String::new();
    let (mut checked, mut missing) = (0, Vec::new());
    for (n, line) in doc.lines().enumerate() {
        if let Some(h) = line.strip_prefix("### `") {
            // "### `data-plane/` (…)": names below are inside that crate.
            section = h.split('`').next().unwrap_or("").to_string();
            section = if section.ends_with('/') {
                section
            } else {
                String::new()
            };
        } else if line.starts_with("## ") {
            section.clear();
        }
        for (i, token) in line.split('`').enumerate() {
            let is_path = i % 2 == 1
                && !token.contains(' ')
                && !token.starts_with(['-', '<', '/', '.', '~', '$'])
                && !token.contains("::")
                && (token.ends_with('/') || EXTENSIONS.iter().any(|e| token.ends_with(e)));
            if !is_path {
                continue;
            }
            checked += 1;
            let found = paths.iter().any(|p| {
                p.starts_with(section.as_str()) && (p == token || p.ends_with(&format!("/{token}")))
            }) || paths.iter().any(|p| p == token);
            if !found {
                missing.push(format!("ARCHITECTURE.md:{}: `{token}`", n + 1));
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} paths found in ARCHITECTURE.md"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist:\n{}",
        missing.join("\n")
    );
}
