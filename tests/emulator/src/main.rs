//! The `ow-emulator` binary: runs the OpenWhisk API emulator for a local sandbox until killed.
//!
//! Usage: `ow-emulator [--port P] [--realtime] [--key ns=uuid:key ...] [--ack-kind KIND ...]`.
//! Prints the URL and one `ns=uuid:key` line per namespace. All behaviour lives in the library.

use anyhow::{bail, Context};
use ow_emulator::{Config, Emulator, NamespaceConfig};

fn main() -> anyhow::Result<()> {
    let mut config = Config { namespaces: Vec::new(), ..Config::default() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => config.port = args.next().context("--port needs a value")?.parse().context("--port")?,
            "--realtime" => config.alarms_realtime = true,
            "--key" => {
                let v = args.next().context("--key needs ns=uuid:key")?;
                let (ns, key) = v.split_once('=').context("--key must be ns=uuid:key")?;
                config.namespaces.push(NamespaceConfig { name: ns.to_string(), key: Some(key.to_string()) });
            }
            "--ack-kind" => config.ack_kinds.push(args.next().context("--ack-kind needs a kind")?),
            "--fires-per-minute" => {
                config.fires_per_minute = Some(args.next().context("--fires-per-minute needs a value")?.parse()?)
            }
            other => {
                bail!("unknown argument '{other}'; expected --port, --realtime, --key, --ack-kind, --fires-per-minute")
            }
        }
    }
    if config.namespaces.is_empty() {
        config.namespaces.push(NamespaceConfig { name: "guest".to_string(), key: None });
    }
    let emu = Emulator::start(config)?;
    let mut out = format!("{}\n", emu.url());
    for (ns, key) in emu.keys() {
        out.push_str(&format!("{ns}={key}\n"));
    }
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes())?;
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}
