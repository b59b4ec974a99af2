//! Guided exploration: the same seed and run budget make the same corpus
//! (whatever `--jobs`), a corpus folder resumes where it stopped, a corpus
//! plan replays to the same digest and coverage, and a planted bug is found
//! and written out with a plan that fails again.
#![cfg(madsim)]

use simkv_sim::explore::{Explorer, Options, Strategy};
use simkv_sim::nemesis::Plan;
use simkv_sim::run;
use simkv_sim::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn scenario(file: &str) -> Scenario {
    Scenario::load(&root().join(file)).unwrap()
}

fn options(jobs: usize, runs: u64) -> Options {
    Options {
        strategy: Strategy::Guided,
        seed: 7,
        jobs,
        max_runs: Some(runs),
        time_budget: None,
        stall: Duration::from_secs(120),
        stop_at_failure: false,
        shrink: None,
        progress: None,
        skip_seeds: vec![],
    }
}

fn explore(s: &Scenario, options: Options, dir: Option<&Path>) -> Explorer {
    let mut e = Explorer::open(s.clone(), "scenarios/chaos.toml", options, dir).unwrap();
    e.run(&mut |_| {}).unwrap();
    e
}

/// What a corpus is: its plans with what they reached, and the counts.
type Corpus = (Vec<(u64, Plan, Vec<String>)>, Vec<(String, u64)>);

fn corpus_of(e: &Explorer) -> Corpus {
    (
        e.corpus.iter().map(|c| (c.id, c.plan.clone(), c.coverage.items.iter().cloned().collect())).collect(),
        e.hits.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    )
}

#[test]
fn the_same_seed_and_runs_make_the_same_corpus_whatever_the_jobs() {
    let s = scenario("scenarios/chaos.toml");
    let one = explore(&s, options(1, 12), None);
    let two = explore(&s, options(2, 12), None);
    assert_eq!(one.runs, 12);
    assert!(!one.corpus.is_empty() && one.hits.len() > 20, "runs reach coverage: {} items", one.hits.len());
    // Mutated plans were tried, not only fresh seeds.
    assert!(one.mutations.values().map(|m| m.0).sum::<u64>() > 0, "no child was made");
    assert_eq!(corpus_of(&one), corpus_of(&two));
}

#[test]
fn a_corpus_folder_resumes_where_it_stopped() {
    let s = scenario("scenarios/chaos.toml");
    let dir = std::env::temp_dir().join(format!("simkv-explore-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    explore(&s, options(1, 8), Some(&dir));
    let resumed = explore(&s, options(1, 16), Some(&dir));
    let straight = explore(&s, options(1, 16), None);
    assert_eq!(resumed.runs, 16);
    assert_eq!(corpus_of(&resumed), corpus_of(&straight));
    // A damaged corpus file is named with its line.
    let hits = dir.join("hits.tsv");
    let kept = std::fs::read_to_string(&hits).unwrap();
    std::fs::write(&hits, format!("{kept}many\tpath:lead\n")).unwrap();
    let damaged = Explorer::open(s.clone(), "scenarios/chaos.toml", options(1, 20), Some(&dir)).err().unwrap();
    let line = kept.lines().count() + 1;
    assert!(damaged.contains(&format!("hits.tsv:{line}")) && damaged.contains("`many` is not a count"), "{damaged}");
    std::fs::write(&hits, kept).unwrap();
    // Another seed is refused, by name.
    let mut other = options(1, 20);
    other.seed = 8;
    let refused = Explorer::open(s.clone(), "scenarios/chaos.toml", other, Some(&dir)).err().unwrap();
    assert!(refused.contains("state.toml") && refused.contains("--seed 7"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corpus_plan_replays_to_the_same_digest_and_coverage() {
    let s = scenario("scenarios/chaos.toml");
    let e = explore(&s, options(1, 8), None);
    let entry = e.corpus.last().unwrap();
    let (a, b) = (run::run(&s, &entry.plan), run::run(&s, &entry.plan));
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.coverage, b.coverage);
    assert_eq!(a.coverage, entry.coverage);
}

#[test]
fn a_planted_bug_is_found_written_and_fails_again() {
    let file = "scenarios/bugs/follower-local-read.toml";
    let s = scenario(file);
    let dir = std::env::temp_dir().join(format!("simkv-explore-bug-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut o = options(1, 40);
    (o.stop_at_failure, o.skip_seeds) = (true, vec![1]);
    let e = explore(&s, o, Some(&dir));
    let found = e.failures.first().expect("the bug is found within 40 runs");
    let written = found.dir.as_ref().unwrap().join("plan.toml");
    let text = std::fs::read_to_string(&written).unwrap();
    let plan = Plan::from_toml(&written.display().to_string(), &text).unwrap();
    let again = run::run(&s, &plan);
    assert!(again.failures.iter().any(|f| f.checker.as_str() == found.checker), "the written plan fails {} again", found.checker);
    let readme = std::fs::read_to_string(found.dir.as_ref().unwrap().join("README.txt")).unwrap();
    assert!(readme.contains("--schedule") && readme.contains(&format!("--seed {}", plan.seed)), "{readme}");
    let _ = std::fs::remove_dir_all(&dir);
}
