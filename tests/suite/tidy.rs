//! What ARCHITECTURE.md claims about the code's shape, checked where a test can check it: the
//! patterns (`polling/`, `hooks/`) name no feature, every extension registry is complete, and
//! README documents what each registry entry reads. No servers: these read files and lists.

use std::fs;
use std::path::{Path, PathBuf};

use owfeed::hooks::SourceKind;
use owfeed::registry::{HOOK_SOURCES, PUSH_PROVIDERS};
use owfeed::s3::push::Provider;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent directory").to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The `.rs` files under `dir`, recursively, with their text up to their first `#[cfg(test)]`
/// (tests may use the registry to build what they test). `tests.rs` files are tests whole.
fn production_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
                let text = read(&path);
                let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
                out.push((path, code));
            }
        }
    }
    out.sort();
    out
}

/// The lines of `code` that name one of `forbidden` outside comments.
fn naming(code: &str, forbidden: &[&str]) -> Vec<String> {
    code.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//"))
        .filter(|l| forbidden.iter().any(|f| l.contains(f)))
        .map(str::to_string)
        .collect()
}

/// **Boundary: the hooks pattern names no feature.** S3 push, SNS and the reconcile plug in
/// through `hooks::extension`, the GitHub and Subscriptions registrars are features of their
/// own (`crate::github`, `crate::subscription`); only `registry.rs` (above the features) names
/// them, and no module of theirs lives under `hooks/`.
#[test]
fn the_hooks_pattern_imports_no_feature_and_no_source() {
    let forbidden = [
        "crate::s3",
        "owfeed::s3",
        "sources::",
        "crate::registry",
        "github::",
        "subscription::",
        "mod github",
        "mod subscription",
    ];
    let hooks = repo_root().join("shared/src/hooks");
    for feature in ["github", "subscription"] {
        for file in [format!("{feature}.rs"), format!("{feature}/mod.rs")] {
            assert!(!hooks.join(&file).exists(), "hooks/{file} is a feature living inside the pattern");
        }
    }
    for (path, code) in production_sources(&hooks) {
        let found = naming(&code, &forbidden);
        assert!(found.is_empty(), "{} names a feature: {found:?}", path.display());
    }
}

/// **Boundary: the polling pattern names no feature and no source.** S3's reconcile plugs in
/// as a change hook, S3's bucket as the named store; the sources come from the registry the
/// binary passes (`registry::POLLING`).
#[test]
fn the_polling_pattern_imports_no_feature_and_no_source() {
    let forbidden = ["crate::s3", "owfeed::s3", "sources::", "crate::registry"];
    for (path, code) in production_sources(&repo_root().join("shared/src/polling")) {
        let found = naming(&code, &forbidden);
        assert!(found.is_empty(), "{} names a feature or source: {found:?}", path.display());
    }
}

/// Every `SourceKind` is served by exactly one registry line, and README's hooks section
/// names every parameter each line's registrar reads.
#[test]
fn every_hook_source_is_registered_and_its_parameters_documented() {
    let readme = read(&repo_root().join("README.md"));
    let hooks = readme.split("## Use the hooks feed").nth(1).expect("README has ## Use the hooks feed");
    let hooks = hooks.split("\n## ").next().unwrap_or_default();
    for name in SourceKind::ALL.split([',', ' ']).filter(|w| !w.is_empty() && *w != "or") {
        let kind =
            SourceKind::parse(name).unwrap_or_else(|| panic!("SourceKind::ALL names {name}, which does not parse"));
        let entries: Vec<_> = HOOK_SOURCES.iter().filter(|s| s.kind == kind).collect();
        assert_eq!(entries.len(), 1, "registry lines for source {name}");
        assert_eq!(entries[0].registrar.name(), name);
        for spec in entries[0].registrar.params() {
            assert!(
                hooks.contains(&format!("`{}`", spec.name)),
                "README's hooks section does not name `{}` of source {name}",
                spec.name
            );
        }
    }
    assert_eq!(HOOK_SOURCES.len(), SourceKind::ALL.matches(',').count() + 2);
}

/// Every push provider is registered once, parses from its name, and README's S3 push section
/// names it.
#[test]
fn every_push_provider_is_registered_and_documented() {
    let readme = read(&repo_root().join("README.md"));
    let push = readme.split("### S3 push (bucket notifications)").nth(1).expect("README has ### S3 push");
    assert_eq!(PUSH_PROVIDERS.len(), Provider::EVERY.len());
    for provider in Provider::EVERY {
        let caps = provider.capabilities();
        assert_eq!(PUSH_PROVIDERS.iter().filter(|p| **p == provider).count(), 1, "{}", caps.name);
        assert_eq!(Provider::parse(caps.name), Some(provider));
        assert!(Provider::ALL.contains(caps.name), "Provider::ALL lacks {}", caps.name);
        assert!(push.contains(&format!("`{}`", caps.name)), "README's S3 push section does not name `{}`", caps.name);
    }
}

/// The README table of one `### heading`: the parameter names (backticked, first column).
fn table_names(readme: &str, heading: &str) -> Vec<String> {
    let mut lines = readme.lines().skip_while(|l| l.trim() != heading).skip(1);
    let table = lines.by_ref().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    table
        .flat_map(|row| {
            row.split('|')
                .nth(1)
                .unwrap_or_default()
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A parameter common to all sources lives in one place (`polling::CORE_PARAMS`, read by
/// `PollSettings`; `LOG_PARAMS` for log sources) and README documents each: the S3 table is
/// the complete one (other sources' tables point to it), log sources have their own.
#[test]
fn every_core_parameter_is_documented() {
    let readme = read(&repo_root().join("README.md"));
    let s3 = table_names(&readme, "### Parameters (`-p source s3`)");
    for name in owfeed::polling::CORE_PARAMS {
        assert!(s3.iter().any(|n| n == name), "README's S3 parameter table lacks the core's `{name}`");
    }
    let log = table_names(&readme, "### Log sources: the core's parameters");
    for name in owfeed::polling::LOG_PARAMS {
        assert!(log.iter().any(|n| n == name), "README's log sources table lacks `{name}`");
    }
}

/// READ's shape is defined once (`polling::ReadStatus`) and README's table of it is complete
/// and invents nothing: each field READ can show is a row, each row a field.
#[test]
fn readme_documents_every_read_field() {
    let readme = read(&repo_root().join("README.md"));
    let mut documented = table_names(&readme, "### What READ shows");
    documented.sort();
    let mut fields = owfeed::polling::ReadStatus::fields();
    fields.sort();
    let missing: Vec<&String> = fields.iter().filter(|f| !documented.contains(f)).collect();
    let invented: Vec<&String> = documented.iter().filter(|d| !fields.contains(d)).collect();
    assert!(missing.is_empty(), "README's READ table lacks {missing:?}");
    assert!(invented.is_empty(), "README's READ table names fields READ never shows: {invented:?}");
    let mut unique = documented.clone();
    unique.dedup();
    assert_eq!(unique, documented, "README's READ table names a field twice");
}

/// README's paragraph on `status.scheduler` names every field of `polling::SchedulerStatus`.
#[test]
fn readme_names_every_scheduler_read_field() {
    let readme = read(&repo_root().join("README.md"));
    let start = readme.find("READ of any trigger shows the namespace's picture").expect("README has the paragraph");
    let paragraph = readme[start..].split("\n\n").next().unwrap_or_default();
    for field in owfeed::polling::SchedulerStatus::fields() {
        assert!(paragraph.contains(&format!("`{field}`")), "README's status.scheduler paragraph lacks `{field}`");
    }
}

/// ARCHITECTURE's code map names every module of the library (a file by its name, `name.rs`
/// or `` `name` ``; a folder's `mod.rs` by the folder), so a new file cannot go unmapped.
#[test]
fn architecture_names_every_module() {
    let architecture = read(&repo_root().join("ARCHITECTURE.md"));
    let src = repo_root().join("shared/src");
    for (path, _) in production_sources(&src) {
        let relative = path.strip_prefix(&src).expect("under shared/src");
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let name = match stem {
            "lib" => continue,
            "mod" => relative.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or_default(),
            other => other,
        };
        let named = architecture.contains(&format!("`{name}`"))
            || architecture.contains(&format!("{name}.rs"))
            || architecture.contains(&format!("{name}/"));
        assert!(named, "ARCHITECTURE.md's code map does not name {}", relative.display());
    }
}
