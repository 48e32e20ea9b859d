//! Test tools the suite installs for itself on first use, so that `cargo test --workspace` on a
//! fresh clone needs nothing installed by hand: moto (a real S3 server, from PyPI), s3rver (a
//! third, independent S3 server, from npm), http-server (a static web server, from npm), pouchdb-server (a CouchDB-compatible server,
//! from npm) and the official OpenWhisk JavaScript client (from
//! npm, pinned by `tests/js/package-lock.json`).
//!
//! Each tool is installed once per target directory (under `target/test-tools/`), pinned, and
//! never into the user's Python or PATH. Installs are serialised across threads and processes
//! with a lock file, and print one line before and after to the real stderr: libtest captures
//! only the `print!` family, so a first run shows what it is waiting for.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{bail, Context as _};

/// The moto release the suite runs; its SigV4 and listing behaviour are what the tests pin.
pub const MOTO_VERSION: &str = "5.2.1";

/// Where installed tools live: `<target dir>/test-tools`.
pub fn tools_dir() -> PathBuf {
    target_dir().join("test-tools")
}

/// The cargo target directory of the running test or fixture binary: the nearest ancestor
/// holding cargo's `CACHEDIR.TAG`, else the system temp dir.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::temp_dir().join("owfeed-test-tools"))
}

/// Writes one progress line to the process's stderr, past libtest's capture.
pub fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "feed-tests: {line}");
}

/// The Debian packages of the real Ceph RGW the suite runs (Ceph 16.2 on bookworm).
pub const CEPH_PACKAGES: &[&str] = &["ceph-mon", "ceph-osd", "radosgw", "ceph-common"];

/// The Ceph commands `tests/ceph/start-rgw.sh` runs.
const CEPH_COMMANDS: &[&str] =
    &["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "ceph-authtool", "monmaptool"];

/// Installs Debian's Ceph (`CEPH_PACKAGES`, about 70 MB) with apt-get unless its commands are
/// there: system packages, not under `tools_dir()`, so this needs root (CI runs as root);
/// without root the error names the command to run.
pub fn ensure_ceph() -> anyhow::Result<()> {
    let have = |cmd: &str| {
        Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
    };
    let ready = || CEPH_COMMANDS.iter().all(|c| have(c));
    let install = || -> anyhow::Result<()> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        #[allow(unsafe_code)]
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            bail!(
                "the Ceph tests need Debian's Ceph: sudo apt-get install --no-install-recommends {}",
                CEPH_PACKAGES.join(" ")
            );
        }
        let apt = |args: &[&str]| -> anyhow::Result<bool> {
            let status = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()?;
            Ok(status.success())
        };
        let mut install_args = vec!["install", "-y", "-q", "--no-install-recommends"];
        install_args.extend(CEPH_PACKAGES);
        if apt(&install_args)? {
            return Ok(());
        }
        // A fresh machine may have no package lists yet.
        if apt(&["update", "-q"])? && apt(&install_args)? {
            return Ok(());
        }
        bail!("apt-get install {} failed", CEPH_PACKAGES.join(" "))
    };
    install_once("Ceph (Debian packages)", &ready, &install)
}

/// Runs `install` unless `ready` already holds, under an exclusive lock on `tools_dir()`.
fn install_once(what: &str, ready: &dyn Fn() -> bool, install: &dyn Fn() -> anyhow::Result<()>) -> anyhow::Result<()> {
    if ready() {
        return Ok(());
    }
    let dir = tools_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let lock_path = dir.join(".lock");
    let lock = std::fs::File::create(&lock_path).with_context(|| format!("create {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("lock {}", lock_path.display()))?;
    if ready() {
        // Another process installed it while this one waited for the lock.
        return Ok(());
    }
    progress(&format!("installing {what} (first run only)…"));
    let began = Instant::now();
    install().with_context(|| format!("installing {what}"))?;
    if !ready() {
        bail!("{what}: the install finished but the tool is still missing");
    }
    progress(&format!("installed {what} in {:.0?}", began.elapsed()));
    Ok(())
}

/// The `PYTHONPATH` holding moto's S3, IAM and SNS server, installed from PyPI on first use.
pub fn moto_pythonpath() -> anyhow::Result<PathBuf> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    // The S3, IAM and SNS backends (SNS adds no dependency; the topics of S3 push registration)
    // plus what `moto.server` imports: moto[server] would add every service's dependencies
    // (cfn-lint, sympy, docker…), 297 MB vs 112 MB.
    pip_tool(&DONE, "moto", "moto[s3,iam,sns]", MOTO_VERSION, &["flask!=2.2.0,!=2.2.1", "flask-cors"])
}

/// The boto3 release the listing benchmark compares with (`list-bench`; never the suite).
pub const BOTO3_VERSION: &str = "1.44.18";

/// The `PYTHONPATH` holding boto3, installed from PyPI on first use of the listing benchmark.
pub fn boto3_pythonpath() -> anyhow::Result<PathBuf> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    pip_tool(&DONE, "boto3", "boto3", BOTO3_VERSION, &[])
}

/// Installs `requirement==version` and `extra` requirements from PyPI into
/// `<tools>/<dir>-<version>` once (per process through `done`, across processes through
/// `install_once`), and returns that directory, to be put on `PYTHONPATH`.
fn pip_tool(
    done: &OnceLock<Result<PathBuf, String>>,
    dir: &str,
    requirement: &str,
    version: &str,
    extra: &[&str],
) -> anyhow::Result<PathBuf> {
    done.get_or_init(|| {
        let site = tools_dir().join(format!("{dir}-{version}"));
        let marker = site.join(".installed");
        let ready = || marker.is_file();
        let install = || {
            let _ = std::fs::remove_dir_all(&site);
            let status = Command::new(python())
                .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"])
                .arg("--target")
                .arg(&site)
                .arg(format!("{requirement}=={version}"))
                .args(extra)
                .env("PIP_ROOT_USER_ACTION", "ignore")
                .stdout(std::io::stderr())
                .status()
                .context("cannot run python3 -m pip (the suite needs python3 with pip)")?;
            if !status.success() {
                bail!("pip install {requirement}=={version} failed: {status}");
            }
            std::fs::write(&marker, version)?;
            Ok(())
        };
        install_once(&format!("{requirement}=={version} into {}", site.display()), &ready, &install)
            .map(|()| site.clone())
            .map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Installs Debian's `rclone` with apt-get unless it is on the PATH (the listing benchmark
/// compares with it; never the suite). Needs root, like `ensure_ceph`.
pub fn ensure_rclone() -> anyhow::Result<()> {
    let ready = || Command::new("sh").args(["-c", "command -v rclone"]).output().is_ok_and(|o| o.status.success());
    let install = || -> anyhow::Result<()> {
        let apt = |args: &[&str]| -> anyhow::Result<bool> {
            let status = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .context("cannot run apt-get (install rclone by hand: apt-get install rclone)")?;
            Ok(status.success())
        };
        let args = ["install", "-y", "-q", "--no-install-recommends", "rclone"];
        if apt(&args)? || (apt(&["update", "-q"])? && apt(&args)?) {
            return Ok(());
        }
        bail!("apt-get install rclone failed (as root?)")
    };
    install_once("rclone (Debian package)", &ready, &install)
}

/// The s3rver release the suite runs (its quirks are documented where it is started).
pub const S3RVER_VERSION: &str = "3.7.1";

/// The `s3rver.js` entry point, installed from npm on first use.
pub fn s3rver_script() -> anyhow::Result<PathBuf> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    npm_tool(&DONE, "s3rver", S3RVER_VERSION, "bin/s3rver.js", &[])
}

/// The npm `http-server` release the suite runs (a real static web server sending `ETag` and
/// `Last-Modified`, answering 304 to `If-None-Match`).
pub const HTTP_SERVER_VERSION: &str = "14.1.1";

/// The `http-server` entry point, installed from npm on first use.
pub fn http_server_script() -> anyhow::Result<PathBuf> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    npm_tool(&DONE, "http-server", HTTP_SERVER_VERSION, "bin/http-server", &[])
}

/// The pouchdb-server release the suite runs (its differences from CouchDB 2.x+ are documented
/// where it is started, `crate::pouchdb`).
pub const POUCHDB_SERVER_VERSION: &str = "4.2.0";

/// The `pouchdb-server` entry point, installed from npm on first use.
pub fn pouchdb_server_script() -> anyhow::Result<PathBuf> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    // Run with --in-memory only (memdown): the native LevelDB and SQLite builds of its
    // optional adapters are never loaded, so their install scripts need not run.
    npm_tool(&DONE, "pouchdb-server", POUCHDB_SERVER_VERSION, "bin/pouchdb-server", &["--ignore-scripts"])
}

/// Installs `package@version` from npm into its own folder under the tools directory once
/// (per process through `done`, across processes through `install_once`), and returns the
/// path of `entry` inside the package.
fn npm_tool(
    done: &OnceLock<Result<PathBuf, String>>,
    package: &str,
    version: &str,
    entry: &str,
    extra_args: &[&str],
) -> anyhow::Result<PathBuf> {
    done.get_or_init(|| {
        let dir = tools_dir().join(format!("{package}-{version}"));
        let script = dir.join("node_modules").join(package).join(entry);
        let marker = dir.join(".installed");
        let ready = || marker.is_file() && script.is_file();
        let install = || {
            std::fs::create_dir_all(&dir)?;
            let status = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--no-save"])
                .args(extra_args)
                .arg("--prefix")
                .arg(&dir)
                .arg(format!("{package}@{version}"))
                .stdout(std::io::stderr())
                .status()
                .context("cannot run npm (the suite needs node and npm)")?;
            if !status.success() {
                bail!("npm install {package}@{version} failed: {status}");
            }
            std::fs::write(&marker, version)?;
            Ok(())
        };
        install_once(&format!("{package}@{version} into {}", dir.display()), &ready, &install)
            .map(|()| script.clone())
            .map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// The Python interpreter to run pip and moto with.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// `tests/js` with the official OpenWhisk client installed (`npm ci` on first use).
pub fn js_client_dir() -> anyhow::Result<PathBuf> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
        let ready = || dir.join("node_modules/openwhisk/package.json").is_file();
        let install = || {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .stdout(std::io::stderr())
                .status()
                .context("cannot run npm (the suite needs node and npm)")?;
            if !status.success() {
                bail!("npm ci --prefix {} failed: {status}", dir.display());
            }
            Ok(())
        };
        install_once("the official OpenWhisk JS client (npm ci --prefix tests/js)", &ready, &install)
            .map(|()| dir.clone())
            .map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// The tansu release the suite runs as its Kafka-protocol broker (its quirks are pinned in
/// tests/suite/kafka_feed.rs).
pub const TANSU_VERSION: &str = "0.6.0";

/// The `tansu` broker binary, built from crates.io on first use with its `dynostore` feature
/// (the default build stores only in PostgreSQL and refuses `memory://`): about 9 minutes on
/// two cores, once per target directory.
pub fn tansu_binary() -> anyhow::Result<PathBuf> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let root = tools_dir().join(format!("tansu-{TANSU_VERSION}"));
        let binary = root.join("bin").join("tansu");
        let ready = || binary.is_file();
        let install = || {
            // Its own target directory: the suite's is locked by the cargo running it.
            let build = tools_dir().join("tansu-build");
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["install", "tansu", "--version", TANSU_VERSION, "--locked", "--features", "dynostore", "--root"])
                .arg(&root)
                .arg("--target-dir")
                .arg(&build)
                .stdout(std::io::stderr())
                .status()
                .context("cannot run cargo install tansu")?;
            let _ = std::fs::remove_dir_all(&build);
            if !status.success() {
                bail!("cargo install tansu@{TANSU_VERSION} --features dynostore failed: {status}");
            }
            Ok(())
        };
        install_once(&format!("tansu {TANSU_VERSION} (cargo install, several minutes)"), &ready, &install)
            .map(|()| binary.clone())
            .map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// The kafka-python release the suite produces with (an independent Kafka client), with the
/// codecs its producer compresses with.
pub const KAFKA_PYTHON_VERSION: &str = "2.3.3";

/// The `PYTHONPATH` holding kafka-python and its snappy, lz4 and zstd codecs, from PyPI.
pub fn kafka_python_path() -> anyhow::Result<PathBuf> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let codecs = ["python-snappy==0.7.3", "lz4==4.4.5", "zstandard==0.25.0"];
    pip_tool(&DONE, "kafka-python", "kafka-python", KAFKA_PYTHON_VERSION, &codecs)
}
