//! Commands written to the control file, parsed before anything acts.
//!
//! A write is parsed whole first: if any line is not understood the write
//! fails with EINVAL and nothing changes, so a typo in a script never leaves
//! the pool half-steered.

use crate::config::PoolLimit;
use crate::config::{check_recompress_level, parse_pool_limit, parse_size};
use std::fmt;

/// One command, as written to the control file (one per line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `compact`: move objects out of sparse zspages and free the empties
    /// (zram's `compact`).
    Compact,
    /// `writeback all|idle|SIZE`: write cold data to the backing file now.
    Writeback(WritebackAmount),
    /// `pool_limit SIZE|N%|none`: change the pool's memory limit
    /// (zram's `mem_limit`, zswap's `max_pool_percent`).
    PoolLimit(Option<PoolLimit>),
    /// `reset mem_used_max`: restart the peak-memory counter (zram: write 0
    /// to `mem_used_max`).
    ResetMemUsedMax,
    /// `recompress idle|all [level=N]`: recompress, now and in this thread,
    /// the blocks not written or read since the last pass (`idle`) or every
    /// block that can be (`all`), at `recompress_level=` or level N (zram's
    /// `recompress type=idle`).
    Recompress { all: bool, level: Option<i32> },
    /// `remount [check] OPTIONS`: apply mount options to the live mount
    /// (`mount -o remount,...` sends this), or with `check` only say
    /// whether they would be accepted.
    Remount { options: String, check: bool },
}

/// How much `writeback` should write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritebackAmount {
    /// Every zspage that can be written back.
    All,
    /// Zspages not referenced since the shrinker last looked (zram's
    /// `writeback idle`).
    Idle,
    /// About this many bytes of pool memory.
    Bytes(u64),
}

/// Why a command was refused; the message is what the log and `zsfs ctl` say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(String);

/// What a SIZE argument looks like.
const SIZE_FORM: &str = "digits with an optional k, m, g or t suffix";

/// The commands and their arguments, for error messages and `--help`.
pub const USAGE: &str = "compact | writeback all|idle|SIZE | pool_limit SIZE|N%|none | \
     recompress idle|all [level=N] | reset mem_used_max | remount [check] OPTIONS";

impl Command {
    /// Parse a whole write: one command per non-empty line. All lines must
    /// parse, or none is returned.
    pub fn parse_all(text: &[u8]) -> Result<Vec<Command>, CommandError> {
        let text = std::str::from_utf8(text)
            .map_err(|_| CommandError("command is not UTF-8 text".into()))?;
        let cmds = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(Command::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if cmds.is_empty() {
            return Err(CommandError(format!(
                "empty command; expected one of: {USAGE}"
            )));
        }
        Ok(cmds)
    }

    /// Parse one line.
    pub fn parse(line: &str) -> Result<Command, CommandError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = |why: String| {
            Err(CommandError(format!(
                "{why} in {line:?}; expected one of: {USAGE}"
            )))
        };
        match words.as_slice() {
            ["compact"] => Ok(Command::Compact),
            ["writeback", "all"] => Ok(Command::Writeback(WritebackAmount::All)),
            ["writeback", "idle"] => Ok(Command::Writeback(WritebackAmount::Idle)),
            ["writeback", size] => match parse_size(size) {
                Some(0) => bad("writeback of 0 bytes".into()),
                Some(n) => Ok(Command::Writeback(WritebackAmount::Bytes(n))),
                None => bad(format!("{size:?} is not a size ({SIZE_FORM})")),
            },
            ["pool_limit", "none" | "0"] => Ok(Command::PoolLimit(None)),
            ["pool_limit", arg] => match parse_pool_limit(arg) {
                Some(l) => Ok(Command::PoolLimit(Some(l))),
                None => bad(format!(
                    "{arg:?} is not a size or a percentage from 1% to 100%"
                )),
            },
            ["reset", "mem_used_max"] => Ok(Command::ResetMemUsedMax),
            ["recompress", which, rest @ ..] if rest.len() <= 1 => {
                let all = match *which {
                    "idle" => false,
                    "all" => true,
                    w => return bad(format!("recompress {w:?}: expected idle or all")),
                };
                let level = match rest.first() {
                    None => None,
                    Some(l) => match l.strip_prefix("level=").and_then(|n| n.parse::<i32>().ok()) {
                        Some(n) if check_recompress_level(n).is_ok() => Some(n),
                        _ => return bad(format!("{l:?} is not level=N with N from 1 to 19")),
                    },
                };
                Ok(Command::Recompress { all, level })
            }
            ["remount", "check", opts] => Ok(Command::Remount {
                options: opts.to_string(),
                check: true,
            }),
            ["remount", "check"] => bad("remount check of no options".into()),
            ["remount", opts] => Ok(Command::Remount {
                options: opts.to_string(),
                check: false,
            }),
            [] => bad("empty command".into()),
            [word, ..] => bad(format!("unknown command or arguments for {word:?}")),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Compact => write!(f, "compact"),
            Command::Writeback(WritebackAmount::All) => write!(f, "writeback all"),
            Command::Writeback(WritebackAmount::Idle) => write!(f, "writeback idle"),
            Command::Writeback(WritebackAmount::Bytes(n)) => write!(f, "writeback {n}"),
            Command::PoolLimit(None) => write!(f, "pool_limit none"),
            Command::PoolLimit(Some(PoolLimit::Bytes(n))) => write!(f, "pool_limit {n}"),
            Command::PoolLimit(Some(PoolLimit::Percent(p))) => write!(f, "pool_limit {p}%"),
            Command::ResetMemUsedMax => write!(f, "reset mem_used_max"),
            Command::Recompress { all, level } => {
                write!(f, "recompress {}", if *all { "all" } else { "idle" })?;
                match level {
                    Some(l) => write!(f, " level={l}"),
                    None => Ok(()),
                }
            }
            Command::Remount { options, check } => {
                write!(f, "remount {}{options}", if *check { "check " } else { "" })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let ok = [
            ("compact", Command::Compact),
            (
                "  writeback   all ",
                Command::Writeback(WritebackAmount::All),
            ),
            ("writeback idle", Command::Writeback(WritebackAmount::Idle)),
            (
                "writeback 64M",
                Command::Writeback(WritebackAmount::Bytes(64 << 20)),
            ),
            (
                "writeback 4096",
                Command::Writeback(WritebackAmount::Bytes(4096)),
            ),
            (
                "pool_limit 1g",
                Command::PoolLimit(Some(PoolLimit::Bytes(1 << 30))),
            ),
            (
                "pool_limit 25%",
                Command::PoolLimit(Some(PoolLimit::Percent(25))),
            ),
            ("pool_limit none", Command::PoolLimit(None)),
            ("reset mem_used_max", Command::ResetMemUsedMax),
            (
                "recompress idle",
                Command::Recompress {
                    all: false,
                    level: None,
                },
            ),
            (
                "recompress all level=9",
                Command::Recompress {
                    all: true,
                    level: Some(9),
                },
            ),
            (
                "remount size=1g,mode=755",
                Command::Remount {
                    options: "size=1g,mode=755".into(),
                    check: false,
                },
            ),
            (
                "remount check nr_inodes=5",
                Command::Remount {
                    options: "nr_inodes=5".into(),
                    check: true,
                },
            ),
        ];
        for (text, want) in ok {
            assert_eq!(Command::parse(text), Ok(want.clone()), "{text}");
            // What Display prints parses back to the same command.
            assert_eq!(Command::parse(&want.to_string()), Ok(want));
        }
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for text in [
            "",
            "compact now",
            "writeback",
            "writeback 0",
            "writeback 12q",
            "writeback -5",
            "pool_limit",
            "pool_limit 0%",
            "pool_limit 101%",
            "pool_limit 0x10",
            "reset",
            "reset everything",
            "rm -rf /",
            "writeback 99999999999t",
            "remount",
            "remount check",
            "remount a b c",
            "recompress",
            "recompress some",
            "recompress all level=0",
            "recompress all level=20",
            "recompress idle 9",
            "recompress idle level=3 again",
        ] {
            let err = Command::parse(text).unwrap_err().to_string();
            assert!(err.contains("expected one of"), "{text}: {err}");
        }
    }

    #[test]
    fn a_write_is_all_or_nothing() {
        assert_eq!(
            Command::parse_all(b"compact\nreset mem_used_max\n"),
            Ok(vec![Command::Compact, Command::ResetMemUsedMax])
        );
        assert!(Command::parse_all(b"compact\nbogus\n").is_err());
        assert!(Command::parse_all(b"\n\n").is_err());
        assert!(Command::parse_all(&[0xff, 0xfe]).is_err());
    }
}
