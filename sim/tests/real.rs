//! `simkv-sim real`: scenarios against real processes, as a user runs them.
//!
//! Each test runs the real build's `simkv-sim` binary as a process of its
//! own (it starts the `simkv` processes next to it, built by the same
//! `cargo test -p simkv -p simkv-sim`), so what is checked is what a user
//! sees: the exit status, the report folder, the messages, and that no
//! process or directory outlives a run, a refused run, a cluster that
//! cannot start, or Ctrl-C.
//!
//! Compiled only in the real build (`RUSTFLAGS="" cargo test -p simkv -p simkv-sim`).
#![cfg(not(madsim))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn simkv_sim() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_simkv-sim"));
    command.current_dir(root());
    command
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The directory a runner with process id `pid` gives its first run.
fn run_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("simkv-real-{pid}-0"))
}

/// Processes whose command line names `dir` (the run's `simkv` processes
/// name their data directories in it).
fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) {
                found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn assert_nothing_left(pid: u32) {
    let dir = run_dir(pid);
    // A killed process's entry may take a moment to go.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_in(&dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(processes_in(&dir), Vec::<String>::new(), "processes outlived the run");
    assert!(!dir.exists(), "{} outlived the run", dir.display());
}

#[test]
fn a_scenario_with_crashes_passes_on_real_processes_and_leaves_nothing_behind() {
    let out = std::env::temp_dir().join(format!("simkv-real-test-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let child = simkv_sim()
        .args(["real", "--scenario", "scenarios/crash-restart.toml", "--seed", "3", "--time-budget", "8", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let said = text(&output);
    assert_eq!(output.status.code(), Some(0), "{said}");
    assert!(said.contains("PASS crash-restart seed 3"), "{said}");
    for file in ["history.edn", "timeline.html", "plan.toml", "logs/pd.log", "logs/store-1.log", "events/store-1.jsonl", "events/pd.jsonl"] {
        assert!(out.join(file).is_file(), "{file} missing from {}", out.display());
    }
    let timeline = std::fs::read_to_string(out.join("timeline.txt")).unwrap();
    assert!(timeline.contains("starts: crash store") && timeline.contains("healed"), "the plan's crashes ran:\n{timeline}");
    // The events came from the processes: every store reported, PD too.
    for file in ["events/store-1.jsonl", "events/store-2.jsonl", "events/store-3.jsonl", "events/pd.jsonl"] {
        let lines = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(lines.lines().count() > 5, "{file}: {} lines", lines.lines().count());
    }
    assert_nothing_left(pid);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_plan_with_a_disk_fault_is_refused_by_name_before_anything_starts() {
    let child =
        simkv_sim().args(["real", "--scenario", "scenarios/disk-faults.toml", "--seed", "1"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("only the simulator can do") && said.contains("--skip-sim-only"), "{said}");
    assert!(said.contains("needs the simulated disk"), "{said}");
    assert_nothing_left(pid);
}

#[test]
fn a_cluster_that_cannot_start_is_an_error_that_names_the_logs_and_leaves_nothing() {
    let child = simkv_sim()
        .args(["real", "--scenario", "scenarios/basic.toml", "--seed", "1", "--simkv-bin", "/bin/false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("exited by itself") && said.contains("logs"), "{said}");
    assert_nothing_left(pid);
}

#[test]
fn ctrl_c_kills_every_process_and_removes_the_directory() {
    let child = simkv_sim().args(["real", "--scenario", "scenarios/basic.toml", "--seed", "1"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    // Wait until the cluster's processes run (four: PD and three stores).
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_in(&run_dir(pid)).len() < 4 {
        assert!(Instant::now() < deadline, "the cluster's processes never showed");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output));
    assert!(text(&output).contains("interrupted"), "{}", text(&output));
    assert_nothing_left(pid);
}

/// The README's real-mode commands are code: every line of a `sh` block
/// marked `# real exit N` is run (with this build's `simkv-sim` for `$R`),
/// in a scratch folder that sees the repository's `scenarios/`, and must
/// exit as the README says.
#[test]
fn the_readmes_real_mode_commands_exit_as_it_says() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut examples = Vec::new();
    for (i, line) in readme.lines().enumerate() {
        if let Some((command, exit)) = line.split_once("   # real exit ") {
            examples.push((i + 1, command.trim().to_string(), exit.trim().parse::<i32>().expect("`# real exit N` needs a number")));
        }
    }
    assert!(examples.len() >= 3 && examples.iter().any(|e| e.2 == 0) && examples.iter().any(|e| e.2 == 2), "{examples:?}");
    let scratch = std::env::temp_dir().join(format!("simkv-real-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    std::os::unix::fs::symlink(root().join("scenarios"), scratch.join("scenarios")).unwrap();
    let mut wrong = Vec::new();
    for (line, command, expected) in &examples {
        let command = command.replace("$R", env!("CARGO_BIN_EXE_simkv-sim"));
        let output = Command::new("sh").arg("-c").arg(&command).current_dir(&scratch).output().unwrap();
        if output.status.code() != Some(*expected) {
            wrong.push(format!("README.md:{line}: exited {:?}, the README says {expected}: {}", output.status.code(), text(&output)));
        }
    }
    assert!(scratch.join("real-run/history.edn").is_file() && scratch.join("real-run/logs/pd.log").is_file(), "the README's --out folder");
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
