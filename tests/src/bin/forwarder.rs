//! forwarder: the floor a plugin proxy is measured against.
//!
//! `forwarder PLUGIN [ARGS]...` runs PLUGIN with piped stdio and forwards
//! both ways, one blocking thread per direction: each JSON message read is
//! parsed into a `serde_json::Value`, serialized again and written with
//! lightningd's `"\n\n"` separator, flushed at once. No routing, no
//! reloads, no state: the least any proxy that understands the messages
//! has to do. The benchmark compares what cln-autoreload adds to a round
//! trip with what this adds.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("forwarder: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let (mut child, child_in, child_out) = cln_autoreload_tests::proxied_plugin("forwarder")?;
    // lightningd → plugin on a thread of its own; plugin → lightningd here.
    // When our stdin ends, the plugin's stdin is closed (the pump drops it)
    // and the plugin exits; when the plugin exits (say on `shutdown`), we
    // exit too, without waiting for lightningd to close our stdin.
    let _forth = std::thread::spawn(move || pump(io::stdin(), child_in));
    let back = pump(child_out, io::stdout());
    let status = child.wait()?;
    back?;
    if !status.success() {
        return Err(io::Error::other(format!("the plugin {status}")));
    }
    Ok(())
}

/// Parses each message from `from` and writes it again to `to`.
fn pump(from: impl Read, to: impl Write) -> io::Result<()> {
    let mut to = BufWriter::new(to);
    let messages = serde_json::Deserializer::from_reader(BufReader::new(from))
        .into_iter::<serde_json::Value>();
    for message in messages {
        let message = match message {
            Ok(m) => m,
            Err(e) if e.is_eof() => break,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        serde_json::to_writer(&mut to, &message)?;
        to.write_all(b"\n\n")?;
        to.flush()?;
    }
    Ok(())
}
