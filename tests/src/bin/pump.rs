//! pump: the true floor of a plugin proxy.
//!
//! `pump PLUGIN [ARGS]...` runs PLUGIN with piped stdio and copies bytes
//! both ways, one blocking thread per direction: a plain `read` into a
//! buffer, then `write_all` of exactly what was read. Nothing is parsed,
//! nothing buffered or flushed beyond that. Any proxy has at least this
//! to do (two more pipe hops, a wake-up each); unlike the minimal
//! forwarder (forwarder.rs), which parses and re-serializes every
//! message, the pump knows nothing of the messages, so the benchmark
//! measures what cln-autoreload adds to a round trip against what this
//! adds.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitCode;

/// As large as a pipe's default capacity: one read takes whatever is there.
const BUF: usize = 64 * 1024;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pump: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let (mut child, child_in, child_out) = cln_autoreload_tests::proxied_plugin("pump")?;
    // lightningd → plugin on a thread of its own; plugin → lightningd here.
    // When our stdin ends, the plugin's stdin is closed (the pump drops it)
    // and the plugin exits; when the plugin exits (say on `shutdown`), we
    // exit too, without waiting for lightningd to close our stdin.
    // std's `io::stdin()` reads through a buffer and `io::stdout()` is
    // line-buffered (it would split a write at its last newline): use
    // duplicates of fds 0 and 1 as plain files, so that every read and
    // write is one system call.
    let stdin = raw(io::stdin().as_fd())?;
    let stdout = raw(io::stdout().as_fd())?;
    let _forth = std::thread::spawn(move || pump(stdin, child_in));
    let back = pump(child_out, stdout);
    let status = child.wait()?;
    back?;
    if !status.success() {
        return Err(io::Error::other(format!("the plugin {status}")));
    }
    Ok(())
}

/// Copies every byte from `from` to `to` as it comes: one `read`, one
/// `write_all` of what it returned.
fn pump(mut from: impl Read, mut to: impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

/// A file of its own on a duplicate of `fd`.
fn raw(fd: BorrowedFd<'_>) -> io::Result<File> {
    Ok(File::from(fd.try_clone_to_owned()?))
}
