//! Where the daemon's log goes (`log=`).
//!
//! A daemon that left the terminal must not write into the stderr it
//! inherited: that is the output of whatever ran mount(8) (a build, a test
//! suite), where a `WARN` line is garbage. So a detached daemon logs to
//! syslog, which on systemd machines is the journal, or to a file named by
//! `log=PATH`; `zsfs -f` (foreground, as systemd units and debugging run
//! it) keeps stderr. `RUST_LOG` chooses what is logged, as before.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// What `log=` names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogTarget {
    /// stderr with `-f`, syslog otherwise (the default).
    #[default]
    Auto,
    Syslog,
    Stderr,
    /// Appended to this file, created 0600 if missing.
    File(PathBuf),
}

/// The default filter: warnings, without fuser's per-session chatter.
const DEFAULT_FILTER: &str = "warn,fuser::session=error";
/// syslog(3)'s LOG_DAEMON facility, shifted as the protocol wants it.
const LOG_DAEMON: u8 = 3 << 3;
/// The local syslog socket (journald listens there too).
const SYSLOG_SOCKET: &str = "/dev/log";

/// Install the process's logger for `target`; `foreground` resolves
/// [`LogTarget::Auto`]. Fails only when a log file cannot be opened, so
/// the mount command can say so before anything is mounted.
pub fn init(target: &LogTarget, foreground: bool) -> io::Result<()> {
    let mut b =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(DEFAULT_FILTER));
    match resolve(target, foreground) {
        LogTarget::Syslog => {
            b.format(|buf, r| {
                let pid = std::process::id();
                let pri = LOG_DAEMON + severity(r.level());
                writeln!(buf, "<{pri}>zsfs[{pid}]: {}: {}", r.target(), r.args())
            });
            b.target(env_logger::Target::Pipe(Box::new(Syslog::default())));
        }
        LogTarget::File(path) => {
            b.target(env_logger::Target::Pipe(Box::new(open_log(&path)?)));
        }
        LogTarget::Stderr | LogTarget::Auto => {}
    }
    // A second init (tests calling twice) keeps the first logger.
    let _ = b.try_init();
    Ok(())
}

fn resolve(target: &LogTarget, foreground: bool) -> LogTarget {
    match target {
        LogTarget::Auto if foreground => LogTarget::Stderr,
        LogTarget::Auto => LogTarget::Syslog,
        t => t.clone(),
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open log={}: {e}", path.display())))
}

/// syslog severity of a log level (RFC 5424 table 2).
fn severity(l: log::Level) -> u8 {
    match l {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// One datagram per record to /dev/log. env_logger writes a whole record
/// and then flushes, so `flush` is where a record ends. With no syslog
/// socket (a container without one) records are dropped: never stderr.
#[derive(Default)]
struct Syslog {
    record: Vec<u8>,
    sock: Option<UnixDatagram>,
}

impl Write for Syslog {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.record.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        let line = self.record.strip_suffix(b"\n").unwrap_or(&self.record);
        if self.sock.is_none() {
            self.sock = UnixDatagram::unbound()
                .and_then(|s| s.connect(SYSLOG_SOCKET).map(|()| s))
                .ok();
        }
        if let Some(s) = &self.sock {
            if s.send(line).is_err() {
                // journald restarted, say: reconnect at the next record.
                self.sock = None;
            }
        }
        self.record.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_stderr_in_the_foreground_and_syslog_when_detached() {
        assert_eq!(resolve(&LogTarget::Auto, true), LogTarget::Stderr);
        assert_eq!(resolve(&LogTarget::Auto, false), LogTarget::Syslog);
        let f = LogTarget::File("/x".into());
        assert_eq!(resolve(&f, true), f);
    }

    #[test]
    fn a_record_is_one_datagram_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        client.connect(&path).unwrap();
        let mut w = Syslog {
            record: Vec::new(),
            sock: Some(client),
        };
        w.write_all(b"<28>zsfs[1]: x: ").unwrap();
        w.write_all(b"hello\n").unwrap();
        w.flush().unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<28>zsfs[1]: x: hello");
    }
}
