//! Records which commit and profile the testbed was built from, so a fuzz
//! campaign's JSON says which build found each seed and `replay` can warn when
//! it is not that build.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SIMKV_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=SIMKV_BUILD_PROFILE={}", std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into()));
    // Rebuild the constant when HEAD moves (a commit, a checkout).
    for path in ["../.git/HEAD", "../.git/refs/heads"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
