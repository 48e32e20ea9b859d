//! Drives an action binary the way OpenWhisk's actionloop proxy does: activations as JSON
//! lines on stdin, results read from a pipe installed as the child's fd 3.
//!
//! The child gets an empty environment plus what the test passes (the real proxy gives no
//! `PATH` either). stdout and stderr are collected for log checks. This module does not
//! build binaries or judge results: the tests do.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

/// How long a read waits before the test fails instead of hanging on a stuck child.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Where the child's results go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultChannel {
    /// A pipe on fd 3, as the actionloop proxy sets up.
    Fd3,
    /// fd 3 explicitly closed in the child, so the runtime must fall back to stdout.
    Closed,
}

/// A running action process in actionloop mode.
pub struct ActionLoop {
    child: Child,
    stdin: Option<ChildStdin>,
    results: Receiver<String>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// What the process left behind after stdin was closed.
#[derive(Debug)]
pub struct Finished {
    /// The exit status.
    pub status: ExitStatus,
    /// fd 3 lines nobody read before the exit (should be none).
    pub unread_results: Vec<String>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr (the activation logs).
    pub stderr: String,
}

/// Makes `writer_fd` the child's fd 3 (without close-on-exec), or closes fd 3 when `None`.
#[allow(unsafe_code)]
fn install_fd3(cmd: &mut Command, writer_fd: Option<i32>) {
    // SAFETY: the closure runs in the forked child before exec and only calls dup2, fcntl and
    // close, which are async-signal-safe; it touches no memory shared with the parent.
    // `writer_fd` stays open in the parent until after spawn, so it is valid in the child.
    unsafe {
        cmd.pre_exec(move || {
            let rc = match writer_fd {
                // dup2 onto itself keeps close-on-exec set, so clear the flag instead.
                Some(3) => libc::fcntl(3, libc::F_SETFD, 0),
                Some(fd) => libc::dup2(fd, 3),
                None => {
                    libc::close(3);
                    0
                }
            };
            if rc == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn collect(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

impl ActionLoop {
    /// Starts `binary` with no arguments, an empty environment plus `env`, and fd 3 as `channel` says.
    pub fn spawn(binary: &Path, env: &[(&str, &str)], channel: ResultChannel) -> Result<ActionLoop> {
        let mut cmd = Command::new(binary);
        cmd.env_clear().envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let (reader, writer) = std::io::pipe().context("creating the fd 3 pipe")?;
        match channel {
            ResultChannel::Fd3 => install_fd3(&mut cmd, Some(std::os::fd::AsRawFd::as_raw_fd(&writer))),
            ResultChannel::Closed => install_fd3(&mut cmd, None),
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {}", binary.display()))?;
        // Only the child may hold the write end, so the reader sees EOF when the child exits.
        drop(writer);
        let (tx, results) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdout = child.stdout.take().map(collect);
        let stderr = child.stderr.take().map(collect);
        let stdin = child.stdin.take();
        Ok(ActionLoop { child, stdin, results, stdout, stderr })
    }

    /// Writes one raw line (a newline is added) to the child's stdin.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| anyhow!("stdin already closed"))?;
        stdin.write_all(format!("{line}\n").as_bytes())?;
        stdin.flush()?;
        Ok(())
    }

    /// Reads the next fd 3 line as JSON.
    pub fn read_result(&mut self) -> Result<Value> {
        let line = self.results.recv_timeout(HANG_GUARD).map_err(|e| anyhow!("no result line on fd 3: {e}"))?;
        serde_json::from_str(&line).with_context(|| format!("result line is not JSON: {line}"))
    }

    /// Sends one activation line and reads its result.
    pub fn activate(&mut self, activation: &Value) -> Result<Value> {
        self.send_line(&serde_json::to_string(activation)?)?;
        self.read_result()
    }

    /// Closes stdin and waits for the child to exit.
    pub fn finish(mut self) -> Result<Finished> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        let join = |h: Option<JoinHandle<String>>| h.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        let stdout = join(self.stdout.take());
        let stderr = join(self.stderr.take());
        let mut unread_results = Vec::new();
        loop {
            match self.results.recv_timeout(HANG_GUARD) {
                Ok(line) => unread_results.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => bail!("fd 3 still open after the child exited"),
            }
        }
        Ok(Finished { status, unread_results, stdout, stderr })
    }
}

impl Drop for ActionLoop {
    fn drop(&mut self) {
        // A failed test must not leave the child running; after `finish` this is a no-op.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
