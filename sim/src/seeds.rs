//! Regression seeds (`seeds/*.toml`): a scenario and a seed that once found
//! something, kept so that `cargo test` replays them forever.
//!
//! ```toml
//! [[seed]]
//! scenario = "snapshot-catch-up"   # a file in scenarios/ (without .toml), or a path
//! seed = 1
//! found = "what this seed once exposed"
//! expect = "pass"                  # or the checker that must fail (planted bugs)
//! ```

use crate::scenario::ScenarioError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedEntry {
    pub scenario: String,
    pub seed: u64,
    pub found: String,
    /// `pass`, or the name of the checker that must fail.
    #[serde(default = "pass")]
    pub expect: String,
    /// A plan file (relative to the project root) to run instead of the
    /// seed's own plan: what `explore` and `shrink` find are plans.
    #[serde(default)]
    pub schedule: Option<String>,
}

fn pass() -> String {
    "pass".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    seed: Vec<SeedEntry>,
}

impl SeedEntry {
    /// The plan this entry replays: its schedule file's (run with its seed),
    /// or the seed's own.
    pub fn plan(&self, root: &Path, scenario: &crate::scenario::Scenario) -> Result<crate::nemesis::Plan, ScenarioError> {
        match &self.schedule {
            Some(schedule) => crate::nemesis::Plan::from_file(&root.join(schedule), self.seed),
            None => Ok(crate::nemesis::Plan::draw(scenario, self.seed)),
        }
    }

    /// The scenario file this entry names, relative to the project root.
    pub fn scenario_path(&self, root: &Path) -> PathBuf {
        if self.scenario.ends_with(".toml") {
            root.join(&self.scenario)
        } else {
            root.join("scenarios").join(format!("{}.toml", self.scenario))
        }
    }
}

pub fn parse(file: &str, text: &str) -> Result<Vec<SeedEntry>, ScenarioError> {
    let parsed: SeedFile = toml::from_str(text).map_err(|e| ScenarioError {
        file: file.to_string(),
        line: e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
        message: e.message().trim().to_string(),
    })?;
    Ok(parsed.seed)
}

/// Every entry of every `*.toml` in `dir`, with the file it came from.
pub fn load_dir(dir: &Path) -> Result<Vec<(String, SeedEntry)>, ScenarioError> {
    let error = |message: String| ScenarioError { file: dir.display().to_string(), line: None, message };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| error(format!("cannot list: {e}")))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| error(format!("{file}: cannot read: {e}")))?;
        out.extend(parse(&file, &text)?.into_iter().map(|e| (file.clone(), e)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_errors_name_the_line() {
        let ok = parse("s.toml", "[[seed]]\nscenario = \"basic\"\nseed = 3\nfound = \"x\"\n").unwrap();
        assert_eq!(ok[0].expect, "pass");
        assert_eq!(ok[0].scenario_path(Path::new("/r")), PathBuf::from("/r/scenarios/basic.toml"));
        let bad = parse("s.toml", "[[seed]]\nscenario = \"basic\"\nseed = \"three\"\nfound = \"x\"\n").unwrap_err();
        assert_eq!(bad.line, Some(3), "{bad}");
    }
}
