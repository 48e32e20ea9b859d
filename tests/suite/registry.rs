//! The source registry (`owfeed::sources::REGISTRY`) is the one list of sources, snapshot and
//! log sources alike: the feed and poll actions serve exactly its sources, and README and
//! manifest.yaml name each of them.
//! A source registered in code but missing from any of these fails here. Likewise the one
//! HTTP agent (`owfeed_s3::http_agent`): a client of the actions built any other way fails here.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use feed_tests::world::{workspace_bin, World};
use owfeed::source::AnySource;
use owfeed::sources::REGISTRY;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent directory").to_path_buf()
}

fn read(name: &str) -> String {
    let path = repo_root().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The parameter names in the first column of the README table under the heading
/// ``### Parameters (`-p source NAME`)``, or `None` when there is no such heading.
fn readme_parameters(readme: &str, source: &str) -> Option<BTreeSet<String>> {
    let heading = format!("### Parameters (`-p source {source}`)");
    let mut lines = readme.lines().skip_while(|l| l.trim() != heading).skip(1);
    let table = lines.by_ref().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    let mut names = BTreeSet::new();
    let mut found = false;
    for row in table {
        found = true;
        let first = row.split('|').nth(1).unwrap_or_default();
        names.extend(first.split('`').skip(1).step_by(2).map(str::to_string));
    }
    found.then_some(names)
}

/// The first required parameter of `source`, which an empty CREATE or dry run must ask for.
fn first_required(source: &AnySource) -> &'static str {
    source.params().iter().find(|p| p.required).map(|p| p.name).unwrap_or_else(|| {
        panic!("source {} has no required parameter: this test needs one to tell it was picked", source.name())
    })
}

#[test]
fn readme_documents_every_registered_source_and_each_of_its_parameters() {
    let readme = read("README.md");
    let sources_row = |name: &str| readme.lines().any(|l| l.starts_with('|') && l.contains(&format!("| `{name}`")));
    for source in REGISTRY {
        let name = source.name();
        assert!(sources_row(name), "README's Sources table has no row for `{name}`");
        let documented = readme_parameters(&readme, name)
            .unwrap_or_else(|| panic!("README has no table under ### Parameters (`-p source {name}`)"));
        for spec in source.params() {
            assert!(documented.contains(spec.name), "README's table for source {name} lacks `{}`", spec.name);
        }
        assert!(documented.contains("source"), "README's table for source {name} lacks `source`");
    }
}

#[test]
fn manifest_feed_action_lists_exactly_the_registered_sources() {
    let manifest = read("manifest.yaml");
    let description = manifest
        .lines()
        .skip_while(|l| l.trim() != "changes:")
        .find_map(|l| l.trim().strip_prefix("description:"))
        .expect("manifest.yaml has a description for the changes action");
    let listed: BTreeSet<&str> = description
        .split_once("sources: ")
        .and_then(|(_, rest)| rest.split_once(';'))
        .map(|(list, _)| list.split(", ").collect())
        .unwrap_or_else(|| panic!("manifest's changes description lists no 'sources: a, b;': {description}"));
    let registered: BTreeSet<&str> = REGISTRY.iter().map(|s| s.name()).collect();
    assert_eq!(listed, registered, "manifest's changes description must list exactly the registered sources");
    // install.sh deploys what the manifest does (shipping.rs): the feed and poll actions.
    let table = Command::new(repo_root().join("deploy/install.sh")).arg("--list-actions").output().expect("run");
    let table = String::from_utf8_lossy(&table.stdout);
    for action in ["changes", "poll"] {
        assert!(table.lines().any(|l| l.split(' ').next() == Some(action)), "install.sh lacks {action}: {table}");
    }
}

#[test]
fn poll_action_serves_exactly_the_registered_sources() {
    let run = |source: &str| {
        let out = Command::new(workspace_bin("poll"))
            .args(["-p", "dryRun", "true", "-p", "source", source])
            .env_clear()
            .output()
            .expect("run poll");
        assert!(!out.status.success(), "a dry run without parameters cannot succeed");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let names: Vec<&str> = REGISTRY.iter().map(|s| s.name()).collect();
    let unknown = run("no-such-source");
    assert!(unknown.contains(&format!("one of: {}", names.join(", "))), "{unknown}");
    for source in REGISTRY {
        let out = run(source.name());
        let param = first_required(source);
        assert!(out.contains(&format!("parameter '{param}'")), "source {}: {out}", source.name());
    }
}

#[test]
fn feed_action_serves_exactly_the_registered_sources_and_leaves_nothing_on_error() {
    let w = World::start(&workspace_bin("changes"), &workspace_bin("poll"));
    let names: Vec<&str> = REGISTRY.iter().map(|s| s.name()).collect();
    let err = w.create_trigger("t", json!({"source": "no-such-source"})).unwrap_err();
    assert!(err.contains("parameter 'source'") && err.contains(&format!("one of: {}", names.join(", "))), "{err}");
    for source in REGISTRY {
        let err = w.create_trigger("t", json!({"source": source.name()})).unwrap_err();
        let param = first_required(source);
        assert!(err.contains(&format!("parameter '{param}'")), "source {}: {err}", source.name());
    }
    assert_eq!(w.user_entities().unwrap(), Vec::<String>::new());
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The one HTTP agent: every client the actions use (S3, OpenWhisk, plain HTTP, SNS
/// certificates) is built by `owfeed_s3::http_agent`, whose transport acknowledges received
/// data before each blocking read (without it a server that holds the end of an answer until
/// then makes a page wait 40 ms: `list-bench --waits`). An agent made any other way fails here.
#[test]
fn every_http_client_of_the_actions_is_built_by_http_agent() {
    let mut files = Vec::new();
    for dir in ["shared", "actions"] {
        rust_files(&repo_root().join(dir), &mut files);
    }
    let others = ["new_agent(", "Agent::new_with_", "Agent::with_parts(", "ureq::get(", "ureq::post(", "ureq::put("];
    let mut found = Vec::new();
    let mut uses = 0;
    for file in &files {
        let text = fs::read_to_string(file).unwrap_or_default();
        let name = file.strip_prefix(repo_root()).unwrap_or(file).display().to_string();
        let code: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
        let count = |what: &str| code.iter().map(|l| l.matches(what).count()).sum::<usize>();
        uses += count("http_agent(");
        // A configuration built here must go to http_agent, not `.into()` / `new_agent()`.
        if count("config_builder()") > count("http_agent(") {
            found.push(format!(
                "{name}: {} agent configurations, {} http_agent calls",
                count("config_builder()"),
                count("http_agent(")
            ));
        }
        for line in &code {
            let made_here = name.ends_with("shared/s3/src/net.rs") && line.contains("Agent::with_parts(");
            if others.iter().any(|o| line.contains(o)) && !made_here {
                found.push(format!("{name}: {}", line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "ureq agents not made by owfeed_s3::http_agent:\n{}", found.join("\n"));
    assert!(uses >= 5, "http_agent is defined and used by the S3, OpenWhisk, HTTP and SNS clients ({uses} uses)");
}
