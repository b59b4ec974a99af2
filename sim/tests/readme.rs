//! The README's commands are code: this test runs them.
//!
//! Every line of a `sh` block in README.md that ends with `# exit N` is run,
//! in the order the README shows them (later lines use what earlier ones
//! wrote), with `cargo run --release -p simkv-sim --` standing for this
//! build's `simkv-sim`, in a scratch folder that sees the repository's
//! `scenarios/`; each must exit with the status its comment names. A
//! `simkv-sim` command in the README without such a comment must say why the
//! test does not run it (`# not run by the README test: ...`), so no example
//! can drift into one that passes when the text says it fails.
#![cfg(madsim)]

use std::path::{Path, PathBuf};
use std::process::Command;

const CLI: &str = "cargo run --release -p simkv-sim --";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A README command: its line number, the shell text, and the exit status
/// its comment promises (`None`: the comment says why it is not run).
#[derive(Debug)]
struct Example {
    line: usize,
    command: String,
    exit: Option<i32>,
}

/// The annotated commands of `readme`'s `sh` blocks, in order; an error
/// for a `simkv-sim` command that carries neither annotation.
fn examples(readme: &str) -> Result<Vec<Example>, String> {
    let (mut out, mut in_sh) = (Vec::new(), false);
    for (i, raw) in readme.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with("```") {
            in_sh = !in_sh && line == "```sh";
            continue;
        }
        if !in_sh || line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (command, comment) = match line.split_once("   # ") {
            Some((c, k)) => (c.trim(), k.trim()),
            None => (line, ""),
        };
        let exit = comment.strip_prefix("exit ").map(|n| n.split_whitespace().next().unwrap_or("").parse::<i32>());
        match exit {
            Some(Ok(code)) => out.push(Example { line: i + 1, command: command.to_string(), exit: Some(code) }),
            Some(Err(_)) => return Err(format!("README.md:{}: `# exit N` needs a number: {line}", i + 1)),
            None if comment.starts_with("not run by the README test:") => out.push(Example { line: i + 1, command: command.to_string(), exit: None }),
            None if command.contains(CLI) => {
                return Err(format!("README.md:{}: a simkv-sim command without `# exit N` (or `# not run by the README test: why`): {line}", i + 1))
            }
            None => {}
        }
    }
    Ok(out)
}

/// Runs every annotated example in a scratch folder; returns what did not
/// exit as promised.
fn run_examples(examples: &[Example], scratch: &Path) -> Vec<String> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).unwrap();
    std::os::unix::fs::symlink(root().join("scenarios"), scratch.join("scenarios")).unwrap();
    let bin = env!("CARGO_BIN_EXE_simkv-sim");
    let mut wrong = Vec::new();
    for e in examples {
        let Some(expected) = e.exit else { continue };
        let command = e.command.replace(CLI, bin);
        let out = Command::new("sh").arg("-c").arg(&command).current_dir(scratch).output().expect("sh runs");
        let code = out.status.code();
        eprintln!("README.md:{}: exit {code:?} (promised {expected}): {}", e.line, e.command);
        if code != Some(expected) {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stdout.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
            wrong.push(format!(
                "README.md:{}: `{}` exited {code:?}, the README says {expected}\n  stdout (end): {}\n  stderr: {}",
                e.line,
                e.command,
                tail.join("\n    "),
                stderr.trim()
            ));
        }
    }
    wrong
}

#[test]
fn readme_commands_exit_as_the_readme_says() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let examples = examples(&readme).unwrap_or_else(|e| panic!("{e}"));
    let run: Vec<&Example> = examples.iter().filter(|e| e.exit.is_some()).collect();
    assert!(
        run.iter().any(|e| e.command.contains(" shrink ")) && run.iter().any(|e| e.command.contains("--schedule")),
        "the find-to-fix walk is in the README: {examples:?}"
    );
    let scratch = std::env::temp_dir().join(format!("simkv-readme-{}", std::process::id()));
    let wrong = run_examples(&examples, &scratch);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // What the walk promises to write is there.
    for file in ["find-fix/replay/timeline.html", "find-fix/replay/history.edn", "find-fix/shrunk/plan.toml"] {
        assert!(scratch.join(file).exists(), "{file} was written");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The test can fail: a README whose failing seed is swapped for a passing
/// one (the mistake this test exists for) is caught.
#[test]
fn a_readme_example_that_lies_is_caught() {
    let lying = "```sh\ncargo run --release -p simkv-sim -- run --scenario scenarios/basic.toml --seed 1   # exit 1\n```\n";
    let lies = examples(lying).unwrap();
    let scratch = std::env::temp_dir().join(format!("simkv-readme-lie-{}", std::process::id()));
    let wrong = run_examples(&lies, &scratch);
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(wrong[0].contains("exited Some(0), the README says 1"), "{}", wrong[0]);
    let unannotated = "```sh\ncargo run --release -p simkv-sim -- run --scenario scenarios/basic.toml --seed 1\n```\n";
    assert!(examples(unannotated).unwrap_err().contains("without `# exit N`"));
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The `toml` blocks of a Markdown file: (line of the block's first line, text).
fn toml_blocks(doc: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        match (&mut current, line.trim()) {
            (None, "```toml") => current = Some((i + 2, String::new())),
            (Some(_), "```") => out.extend(current.take()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// The scenario examples in the README and in `scenarios/README.md` are
/// scenarios the testbed accepts, so the format they document cannot drift
/// from the one it reads.
#[test]
fn the_documented_scenario_examples_parse() {
    for doc in ["README.md", "scenarios/README.md"] {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        let blocks = toml_blocks(&text);
        assert!(!blocks.is_empty(), "{doc} documents the scenario format");
        for (line, block) in blocks {
            if let Err(e) = simkv_sim::scenario::Scenario::parse(&format!("{doc}:{line}"), &block) {
                panic!("{doc}, the example at line {line}: {e}");
            }
        }
    }
    assert!(simkv_sim::scenario::Scenario::parse("bad.toml", "[cluster]\nstorez = 3\n").is_err(), "the check can fail");
}

/// Every planted bug's scenario has its row in `scenarios/bugs/README.md`.
#[test]
fn every_planted_bug_is_in_the_bug_table() {
    let table = std::fs::read_to_string(root().join("scenarios/bugs/README.md")).unwrap();
    for entry in std::fs::read_dir(root().join("scenarios/bugs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let scenario = simkv_sim::scenario::Scenario::load(&path).unwrap();
            for bug in &scenario.bugs {
                let name = serde_json::to_string(bug).unwrap();
                let row = format!("| `{}` |", name.trim_matches('"'));
                assert!(table.contains(&row), "{} plants {name}, which scenarios/bugs/README.md has no row for", path.display());
            }
        }
    }
}
