//! The `zsfs` command.
//!
//! - `zsfs [-f] [-o OPTIONS] [SOURCE] MOUNTPOINT` mounts (the default form;
//!   SOURCE, as mount.fuse3 passes it, is what /proc/mounts shows). Without `-f` it returns once the mount is ready and
//!   the daemon serves in the background (see `daemon.rs`).
//! - `zsfs stats ...` and `zsfs ctl ...` talk to a mount through its control
//!   file (issue 5; the work is in `zsfs::control::cli`).
//! - `zsfs list`, and `zsfs` with no arguments, list every zsfs mount
//!   (`zsfs::control::list`).
//! - `zsfs __generate man|completions DIR` (hidden) writes the man pages and
//!   shell completions from this very parser (`generate.rs`), so they cannot
//!   drift from `--help`; `mount-helpers/install.sh` runs it.
//!
//! Everything that can be checked is checked here, before the fork, so a
//! mistake is reported by the command the user typed, with a non-zero exit
//! and nothing mounted.

mod daemon;
mod generate;

use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "zsfs",
    version,
    about = "A compressed in-memory filesystem (FUSE), used where tmpfs would be",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = zsfs::config::OPTIONS_HELP.as_str()
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    mount: MountArgs,
}

#[derive(Args, Debug)]
struct MountArgs {
    /// Stay in the foreground and log to stderr (RUST_LOG=info for more).
    #[arg(short = 'f', long = "foreground")]
    foreground: bool,
    /// Mount options, comma-separated (may be given several times).
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    /// [SOURCE] MOUNTPOINT: where to mount; SOURCE (default `zsfs`) is the
    /// name /proc/mounts, df and findmnt show, as for tmpfs.
    #[arg(value_name = "MOUNTPOINT", required = true, num_args = 1..=2)]
    paths: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every zsfs mount, one line each, like zramctl (also: `zsfs` alone).
    #[command(after_help = zsfs::control::list::columns_help())]
    List {
        /// JSON output: {"zsfs": [{"source": ..., "mountpoint": ..., ...}]}.
        #[arg(short = 'J', long)]
        json: bool,
        /// Sizes in bytes rather than in a human-readable form.
        #[arg(short = 'b', long)]
        bytes: bool,
        /// Columns to show, comma-separated (+COLS adds to the default ones).
        #[arg(short = 'o', long, value_name = "COLS")]
        output: Option<String>,
        /// Do not print the header line.
        #[arg(short = 'n', long)]
        noheadings: bool,
        /// Name of the control file, if mounted with control=NAME.
        #[arg(long, default_value = ".zsfs")]
        control: String,
    },
    /// Show what a mount's pool holds (reads its control file).
    Stats {
        /// A zsfs mountpoint, or a file or directory in one (its own figures);
        /// with --prometheus any number of mountpoints (none: every mount).
        #[arg(value_name = "PATH", required_unless_present = "prometheus")]
        paths: Vec<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Print the whole size-class table (zsmalloc's `classes`).
        #[arg(long)]
        classes: bool,
        /// Prometheus text format, e.g. for node_exporter's textfile collector.
        #[arg(long, conflicts_with_all = ["json", "classes", "watch"])]
        prometheus: bool,
        /// Refresh every SECONDS, like watch(1), with rates since the last refresh.
        #[arg(long, value_name = "SECONDS")]
        watch: Option<f64>,
        /// Name of the control file, if mounted with control=NAME.
        #[arg(long, default_value = ".zsfs")]
        control: String,
    },
    /// Send a command (compact, writeback ..., pool_limit ...) to a mount.
    Ctl {
        /// A zsfs mountpoint.
        mountpoint: PathBuf,
        /// The command words, e.g. `compact` or `pool_limit 1g`.
        #[arg(required = true, num_args = 1..)]
        command: Vec<String>,
        /// Name of the control file, if mounted with control=NAME.
        #[arg(long, default_value = ".zsfs")]
        control: String,
    },
    /// Write the man pages or shell completions into DIR (for install.sh).
    #[command(name = "__generate", hide = true)]
    Generate {
        #[arg(value_enum)]
        what: generate::What,
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    // `zsfs` alone lists the mounts, as `zramctl` alone lists the devices.
    if std::env::args_os().len() == 1 {
        return list(zsfs::control::list::ListArgs {
            control_name: ".zsfs".into(),
            ..Default::default()
        });
    }
    let cli = Cli::parse();
    if cli.command.is_some() {
        // Only log files can fail to open; stderr cannot.
        let _ = zsfs::sys::log::init(&zsfs::sys::log::LogTarget::Stderr, true);
    }
    match cli.command {
        Some(Command::List {
            json,
            bytes,
            output,
            noheadings,
            control,
        }) => list(zsfs::control::list::ListArgs {
            json,
            bytes,
            output,
            noheadings,
            control_name: control,
        }),
        Some(Command::Stats {
            paths,
            json,
            classes,
            prometheus,
            watch,
            control,
        }) => stats(zsfs::control::cli::StatsArgs {
            paths,
            json,
            classes,
            prometheus,
            watch,
            control_name: control,
        }),
        Some(Command::Generate { what, dir }) => {
            match generate::write(what, Cli::command(), &dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("zsfs __generate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Ctl {
            mountpoint,
            command,
            control,
        }) => ctl(&mountpoint, &control, &command),
        None => mount(cli.mount),
    }
}

fn mount(args: MountArgs) -> ExitCode {
    if let Some(opts) = zsfs::control::remount::requested(&args.options) {
        let target = args.paths.last().expect("clap requires a mountpoint");
        return match zsfs::control::remount::remount(target, &opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("zsfs: remount: {e}");
                ExitCode::from(32)
            }
        };
    }
    // A root mount is open to every user, as tmpfs is: FUSE otherwise lets
    // only the mounting user in, whatever the permission bits say (the
    // kernel still checks them: default_permissions). Ordinary users opt in
    // with allow_other, which needs user_allow_other in /etc/fuse.conf.
    let mut config = zsfs::config::Config {
        allow_other: daemon::is_root(),
        ..Default::default()
    };
    for o in &args.options {
        if let Err(e) = zsfs::config::apply_options(&mut config, o) {
            eprintln!("zsfs: {e}");
            return ExitCode::from(2);
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        zsfs::config::absolutize_paths(&mut config, &cwd);
    }
    if let Err(e) = zsfs::sys::log::init(&config.log, args.foreground) {
        eprintln!("zsfs: {e}");
        return ExitCode::from(2);
    }
    if let [source, _] = args.paths.as_slice() {
        match zsfs::config::mount_source(source.as_os_str(), daemon::is_root()) {
            Ok(s) => config.source = s,
            Err(e) => {
                eprintln!("zsfs: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let target = args.paths.last().expect("clap requires a mountpoint");
    let mountpoint = match daemon::check_mountpoint(target) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("zsfs: {msg}");
            return ExitCode::FAILURE;
        }
    };
    if config.allow_other && !daemon::is_root() && !daemon::user_allow_other_enabled() {
        eprintln!(
            "zsfs: allow_other needs `user_allow_other` in /etc/fuse.conf for ordinary users \
             (ask root to add it), or mount without allow_other"
        );
        return ExitCode::FAILURE;
    }
    let code = daemon::mount_and_serve(&config, &mountpoint, args.foreground);
    ExitCode::from(code as u8)
}

fn list(args: zsfs::control::list::ListArgs) -> ExitCode {
    match zsfs::control::list::list(&args) {
        Ok((out, notes)) => {
            print!("{out}");
            for n in notes {
                eprintln!("zsfs list: {n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zsfs list: {e}");
            ExitCode::from(2)
        }
    }
}

fn stats(args: zsfs::control::cli::StatsArgs) -> ExitCode {
    match zsfs::control::cli::stats(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zsfs stats: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ctl(mountpoint: &Path, control: &str, words: &[String]) -> ExitCode {
    match zsfs::control::cli::ctl(mountpoint, control, words) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zsfs ctl: {e}");
            ExitCode::FAILURE
        }
    }
}
