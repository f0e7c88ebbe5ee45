//! `sluice-gateway audit verify PATH`: walks a hash-chained audit log (a
//! directory of daily files, or one file) and reports the first broken link.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::chain::{self, GENESIS};
use super::sink::{files, read_anchor};

#[derive(Debug)]
pub struct Break {
    pub file: PathBuf,
    pub line: usize,
    pub reason: String,
}

#[derive(Debug)]
pub struct Report {
    pub records: u64,
    pub files: usize,
    pub first_break: Option<Break>,
}

pub fn verify(path: &Path) -> std::io::Result<Report> {
    let (list, mut expected) = if path.is_dir() {
        let start = read_anchor(path)
            .map(|(_, h)| h)
            .unwrap_or_else(|| GENESIS.to_string());
        (files(path)?, Some(start))
    } else {
        // A lone file: its first record's predecessor is unknown.
        (vec![path.to_path_buf()], None)
    };
    let mut report = Report {
        records: 0,
        files: list.len(),
        first_break: None,
    };
    let mut last_seq: Option<u64> = None;
    for file in &list {
        for (i, line) in BufReader::new(File::open(file)?).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let fail = |reason: String| Break {
                file: file.clone(),
                line: i + 1,
                reason,
            };
            let link = match chain::check(&line) {
                Ok(l) => l,
                Err(e) => {
                    report.first_break = Some(fail(e));
                    return Ok(report);
                }
            };
            if let Some(exp) = &expected
                && &link.prev_hash != exp
            {
                report.first_break = Some(fail(format!(
                    "prev_hash does not match the previous record's hash (a record before it was removed, altered or reordered; seq {})",
                    link.seq
                )));
                return Ok(report);
            }
            if let Some(prev) = last_seq
                && link.seq != prev + 1
            {
                report.first_break = Some(fail(format!("seq jumps from {prev} to {}", link.seq)));
                return Ok(report);
            }
            last_seq = Some(link.seq);
            expected = Some(link.hash);
            report.records += 1;
        }
    }
    Ok(report)
}
