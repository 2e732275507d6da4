//! Replays every committed seed (`corpus/<target>/`) and every fixed finding
//! (`regressions/<target>/`) through the fuzz targets' checks. Runs on stable Rust without
//! libFuzzer, so CI keeps the invariants and the fixed findings from coming back.
//!
//! Findings still open (`regressions/open/<target>/`, reported against code outside this
//! crate's reach) must still fail their check: once one passes, it was fixed, and its file
//! belongs in `regressions/<target>/`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use mcp_trace_filter_fuzz::{check_for, TARGETS};
use std::fs;
use std::panic;
use std::path::Path;

/// Runs every file of `dir/<target>/` through that target's check; returns how many ran.
fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut failures = Vec::new();
    let mut count = 0;
    for entry in fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let folder = entry.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        if name == "open" {
            continue;
        }
        let check = check_for(&name)
            .unwrap_or_else(|| panic!("{}: no fuzz target named {name}", folder.display()));
        let mut files: Vec<_> = fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let data = fs::read(&file).unwrap();
            count += 1;
            if panic::catch_unwind(|| check(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "failing inputs: {failures:#?}");
    count
}

#[test]
fn seed_corpus_holds_the_invariants() {
    let count = replay("corpus");
    assert!(count >= TARGETS.len(), "only {count} seeds");
}

#[test]
fn every_target_has_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, _) in TARGETS {
        let seeds = fs::read_dir(root.join(name))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(seeds > 0, "no seeds for {name}");
    }
}

#[test]
fn fixed_findings_stay_fixed() {
    replay("regressions");
}

#[test]
fn open_findings_are_still_open() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions/open");
    let Ok(folders) = fs::read_dir(&root) else {
        return;
    };
    let mut fixed = Vec::new();
    for folder in folders {
        let folder = folder.unwrap().path();
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        let check = check_for(&name).unwrap_or_else(|| panic!("no fuzz target named {name}"));
        for file in fs::read_dir(&folder).unwrap() {
            let file = file.unwrap().path();
            let data = fs::read(&file).unwrap();
            if panic::catch_unwind(|| check(&data)).is_ok() {
                fixed.push(file.display().to_string());
            }
        }
    }
    assert!(
        fixed.is_empty(),
        "fixed (move them to regressions/<target>/): {fixed:#?}"
    );
}
