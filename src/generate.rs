//! `zsfs __generate man|completions DIR`: the man pages and the shell
//! completions, made from the clap parser `main.rs` runs, the mount-option
//! table `--help` prints ([`zsfs::config::MOUNT_OPTIONS`]) and the field
//! table the control file prints ([`zsfs::control::report::FIELDS`]), so no
//! page can say something the program does not do.
//!
//! Pages: `zsfs.8` (the command, mount options, control file, signals, exit
//! status), `zsfs-stats.1`, `mount.fuse.zsfs.8` (the mount(8) helper).
//! Completions: `zsfs.bash` and `_zsfs` (zsh).

use clap::{Arg, ArgAction, Command, ValueEnum};
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum What {
    /// zsfs.8, zsfs-stats.1, mount.fuse.zsfs.8
    Man,
    /// zsfs.bash (bash) and _zsfs (zsh)
    Completions,
}

/// Write `what` for the parser `cmd` into `dir` (created if missing).
pub(crate) fn write(what: What, cmd: Command, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let res = match what {
        What::Man => man_pages(cmd, dir),
        What::Completions => completions(cmd, dir),
    };
    res.map_err(|e| format!("writing into {}: {e}", dir.display()))
}

fn completions(mut cmd: Command, dir: &Path) -> io::Result<()> {
    use clap_complete::{generate, Shell};
    for (shell, file) in [(Shell::Bash, "zsfs.bash"), (Shell::Zsh, "_zsfs")] {
        let mut w = BufWriter::new(File::create(dir.join(file))?);
        generate(shell, &mut cmd, "zsfs", &mut w);
        w.flush()?;
    }
    Ok(())
}

fn man_pages(cmd: Command, dir: &Path) -> io::Result<()> {
    let mut cmd = cmd;
    // Building gives subcommands their "zsfs stats" usage names.
    cmd.build();
    let stats = cmd
        .find_subcommand("stats")
        .expect("the parser has a stats subcommand")
        .clone();
    zsfs_8(&cmd, &mut page(dir, "zsfs.8")?)?;
    zsfs_stats_1(stats, &mut page(dir, "zsfs-stats.1")?)?;
    mount_helper_8(&mut page(dir, "mount.fuse.zsfs.8")?)?;
    Ok(())
}

fn page(dir: &Path, name: &str) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::new(File::create(dir.join(name))?))
}

fn man(cmd: Command, section: &str) -> Man {
    Man::new(cmd).section(section).manual("zsfs")
}

/// `.TP` paragraphs: a tag line, then its text.
fn tagged(r: &mut Roff, tag: Vec<Inline>, text: &str) {
    r.control("TP", []);
    r.text(tag);
    r.text([roman(text)]);
}

/// A form such as `size=SIZE|N%`: the option name bold, placeholders
/// (upper-case words) italic, as man-pages(7) asks.
fn form_inlines(form: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Inline>| {
        if word.is_empty() {
            return;
        }
        let upper = word.len() > 1 && word.chars().all(|c| c.is_ascii_uppercase());
        out.push(if upper {
            italic(word.as_str())
        } else {
            bold(word.as_str())
        });
        word.clear();
    };
    for c in form.chars() {
        if matches!(c, '=' | '|' | ',' | ' ') {
            flush(&mut word, &mut out);
            out.push(roman(c.to_string()));
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn section(r: &mut Roff, name: &str) {
    r.control("SH", [name]);
}

fn para(r: &mut Roff, text: &str) {
    r.control("PP", []);
    r.text([roman(text)]);
}

/// The MOUNT OPTIONS section, from the table `--help` prints.
fn mount_options(r: &mut Roff) {
    section(r, "MOUNT OPTIONS");
    para(
        r,
        "Options are given with -o, comma-separated, as for mount -t tmpfs; \
         a later option overrides an earlier one. An unknown option is an error \
         that names it, and nothing is mounted.",
    );
    for o in zsfs::config::MOUNT_OPTIONS {
        tagged(r, form_inlines(o.form), o.doc);
    }
    para(r, zsfs::config::SIZE_NOTE);
}

/// Options of one subcommand as `.TP` entries (for the COMMANDS section).
fn arg_entries(r: &mut Roff, cmd: &Command) {
    for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let mut tag = Vec::new();
        if let Some(s) = a.get_short() {
            tag.push(bold(format!("-{s}")));
        }
        if let Some(l) = a.get_long() {
            if !tag.is_empty() {
                tag.push(roman(", "));
            }
            tag.push(bold(format!("--{l}")));
        }
        let takes_value = a.get_num_args().is_some_and(|n| n.takes_values())
            && !matches!(a.get_action(), ArgAction::SetTrue | ArgAction::Help);
        if let Some(names) = a.get_value_names().filter(|_| takes_value) {
            let v = names.join(" ");
            if tag.is_empty() {
                tag.push(italic(v));
            } else {
                tag.push(roman(" "));
                tag.push(italic(v));
            }
        } else if tag.is_empty() {
            tag.push(italic(a.get_id().as_str().to_uppercase()));
        }
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        tagged(r, tag, &help);
    }
}

fn usage_line(cmd: &Command) -> String {
    let mut c = cmd.clone();
    c.render_usage()
        .to_string()
        .trim_start_matches("Usage: ")
        .to_string()
}

fn commands(r: &mut Roff, root: &Command) {
    section(r, "COMMANDS");
    para(
        r,
        "Without a command, zsfs mounts; with no arguments at all it runs zsfs list.",
    );
    for sub in root
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        r.control("SS", [usage_line(sub).as_str()]);
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let mut text = vec![roman(format!("{about}."))];
        if sub.get_name() == "stats" {
            text.extend([roman(" See "), bold("zsfs-stats"), roman("(1).")]);
        }
        r.text(text);
        r.control("RS", []);
        arg_entries(r, sub);
        r.control("RE", []);
    }
    r.control("SS", ["Columns of zsfs list"]);
    for c in zsfs::control::list::columns() {
        tagged(r, vec![bold(c.0)], c.1);
    }
}

fn control_file(r: &mut Roff) {
    section(r, "CONTROL FILE");
    para(
        r,
        "Every mount has a file .zsfs at its root (control=NAME renames it). Reading it \
         gives one \"name value\" line per field below, a blank line, then the size-class \
         table in the form of zsmalloc's debugfs classes file. Names follow zram's \
         mm_stat and bd_stat and zswap's counters. Anyone who can read the mount may \
         read it; zsfs stats and zsfs list print it for people and monitoring.",
    );
    for f in zsfs::control::report::FIELDS {
        tagged(r, vec![bold(f.name)], f.doc);
    }
    para(
        r,
        "Writing a line to it sends a command (root and the mounting user only; zsfs \
         ctl does it and prints what changed). A write is parsed whole first: if any \
         line is not understood the write fails with EINVAL and nothing is done. \
         The commands:",
    );
    r.control("RS", []);
    r.text([bold(zsfs::control::command::USAGE)]);
    r.control("RE", []);
}

fn zsfs_8(root: &Command, w: &mut dyn Write) -> io::Result<()> {
    let mut top = root.clone();
    // The plain-text option list of --help becomes MOUNT OPTIONS below.
    top = top.after_help("").after_long_help("");
    let m = man(top, "8");
    m.render_title(w)?;
    m.render_name_section(w)?;
    let mut r = Roff::new();
    section(&mut r, "SYNOPSIS");
    r.text([
        bold("zsfs"),
        roman(" [-f] [-o "),
        italic("OPTIONS"),
        roman("] ["),
        italic("SOURCE"),
        roman("] "),
        italic("MOUNTPOINT"),
    ]);
    for sub in root
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        r.control("br", []);
        r.text([roman(usage_line(sub))]);
    }
    section(&mut r, "DESCRIPTION");
    para(
        &mut r,
        "zsfs is a filesystem kept in memory, used where tmpfs would be. File blocks are \
         compressed with LZ4 into a zsmalloc-style pool; identical blocks are stored once; \
         when the pool reaches pool_limit= the coldest data is written to a backing file. \
         zsfs runs as a FUSE daemon: zsfs MOUNTPOINT returns once the mount is ready and \
         leaves the daemon serving in the background (-f keeps it in the foreground). \
         mount -t fuse.zsfs and fstab lines work through mount.fuse.zsfs(8).",
    );
    r.to_writer(w)?;
    m.render_options_section(w)?;
    let mut r = Roff::new();
    mount_options(&mut r);
    commands(&mut r, root);
    control_file(&mut r);
    section(&mut r, "SIGNALS");
    tagged(
        &mut r,
        vec![
            bold("SIGINT"),
            roman(", "),
            bold("SIGTERM"),
            roman(", "),
            bold("SIGHUP"),
        ],
        "The daemon unmounts (lazily if the mount is busy) and exits 0 once the kernel \
         lets go. A second such signal makes a daemon kept alive by a busy, lazily \
         detached mount exit with status 1, which aborts the FUSE connection.",
    );
    tagged(
        &mut r,
        vec![bold("SIGKILL")],
        "A small watcher process (zsfs-watch) that the daemon forked before mounting \
         detaches the mount, so the mountpoint is an ordinary directory again rather \
         than \"Transport endpoint is not connected\". The data is gone.",
    );
    section(&mut r, "EXIT STATUS");
    tagged(
        &mut r,
        vec![bold("0")],
        "Success: mounted (the daemon serves in the background), or the command did \
         what it was asked; the daemon itself exits 0 after a clean unmount.",
    );
    tagged(
        &mut r,
        vec![bold("1")],
        "Failure: the mount could not be made (the message says why, and nothing is \
         mounted), a control file could not be read or rejected a command.",
    );
    tagged(
        &mut r,
        vec![bold("2")],
        "Usage error: an unknown option, a malformed option value, or an unknown column.",
    );
    section(&mut r, "FILES");
    tagged(
        &mut r,
        vec![italic("MOUNTPOINT"), bold("/.zsfs")],
        "The control file (see CONTROL FILE).",
    );
    tagged(
        &mut r,
        vec![bold("/etc/fuse.conf")],
        "user_allow_other there lets ordinary users mount with allow_other.",
    );
    see_also(&mut r, &[("zsfs-stats", "1"), ("mount.fuse.zsfs", "8")]);
    r.to_writer(w)?;
    m.render_version_section(w)?;
    w.flush()
}

fn see_also(r: &mut Roff, pages: &[(&str, &str)]) {
    section(r, "SEE ALSO");
    let mut line = Vec::new();
    let all = pages.iter().copied().chain([
        ("mount", "8"),
        ("tmpfs", "5"),
        ("fuse", "8"),
        ("zramctl", "8"),
    ]);
    for (i, (name, sec)) in all.enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(name));
        line.push(roman(format!("({sec})")));
    }
    r.text(line);
}

fn zsfs_stats_1(stats: Command, w: &mut dyn Write) -> io::Result<()> {
    let m = man(stats, "1");
    m.render_title(w)?;
    m.render_name_section(w)?;
    m.render_synopsis_section(w)?;
    let mut r = Roff::new();
    section(&mut r, "DESCRIPTION");
    para(
        &mut r,
        "zsfs stats reads the control file of a zsfs mount and prints a summary for \
         people: files, data stored and its compressed size, memory used and its limit, \
         what deduplication and the backing file hold, the shrinker's work, and one line \
         naming the three size classes that hold the most pages. --classes prints the \
         whole size-class table instead; --json prints every field; --watch refreshes \
         and adds the rates (bytes per second written back to and read back from the \
         backing file) since the last refresh. Given a file or directory inside a mount, \
         it prints that file's or tree's own figures.",
    );
    r.to_writer(w)?;
    m.render_options_section(w)?;
    let mut r = Roff::new();
    section(&mut r, "PROMETHEUS METRICS");
    para(
        &mut r,
        "--prometheus prints the Prometheus text exposition format for the mounts named \
         (none: every zsfs mount), with the labels mountpoint and source. zsfs_up is 1 \
         for a mount that answered and 0 for one that did not. Counters end in _total; \
         byte quantities in _bytes; 4 KiB page and block counts are given as counts, \
         as in the control file. The metrics:",
    );
    for f in zsfs::control::report::FIELDS {
        let kind = match f.kind {
            zsfs::control::Kind::Counter => "counter",
            zsfs::control::Kind::Gauge => "gauge",
        };
        tagged(
            &mut r,
            vec![
                bold(zsfs::control::prometheus::metric_name(f)),
                roman(format!(" ({kind}, field {})", f.name)),
            ],
            f.doc,
        );
    }
    section(&mut r, "EXAMPLES");
    para(
        &mut r,
        "For node_exporter's textfile collector, from cron or a systemd timer (write, \
         then rename, so a scrape never sees half a file):",
    );
    r.control("RS", []);
    r.control("nf", []);
    r.text([roman(
        "zsfs stats --prometheus > /var/lib/node_exporter/textfile_collector/zsfs.prom.tmp &&\n  \
         mv /var/lib/node_exporter/textfile_collector/zsfs.prom.tmp \
         /var/lib/node_exporter/textfile_collector/zsfs.prom",
    )]);
    r.control("fi", []);
    r.control("RE", []);
    section(&mut r, "EXIT STATUS");
    para(
        &mut r,
        "0 on success; 1 if the path is not in a zsfs mount or its control file cannot \
         be read; 2 on a usage error.",
    );
    see_also(&mut r, &[("zsfs", "8")]);
    r.to_writer(w)?;
    w.flush()
}

/// The helper is a shell script; this parser exists only to document its
/// interface in the same form as the others.
fn mount_helper_command() -> Command {
    let flag = |id: &'static str, short: char, help: &'static str| {
        Arg::new(id)
            .short(short)
            .action(ArgAction::SetTrue)
            .help(help)
    };
    Command::new("mount.fuse.zsfs")
        .about("mount(8) helper for zsfs")
        .arg(
            Arg::new("source")
                .value_name("SOURCE")
                .required(true)
                .help("What mount(8) passes as the device; zsfs ignores it (write zsfs)."),
        )
        .arg(
            Arg::new("mountpoint")
                .value_name("MOUNTPOINT")
                .required(true)
                .help("The directory to mount on."),
        )
        .arg(
            Arg::new("options")
                .short('o')
                .value_name("OPTIONS")
                .action(ArgAction::Append)
                .help("Mount options, comma-separated; see MOUNT OPTIONS."),
        )
        .arg(flag(
            "fake",
            'f',
            "Fake: do everything but mount (with -v, show the command).",
        ))
        .arg(flag("verbose", 'v', "Print the zsfs command line it runs."))
        .arg(flag("no-mtab", 'n', "Accepted and ignored (no mtab)."))
        .arg(flag("sloppy", 's', "Accepted and ignored (sloppy)."))
        .arg(flag("read-only", 'r', "Mount read-only (adds ro)."))
        .arg(flag("read-write", 'w', "Mount read-write (adds rw)."))
}

fn mount_helper_8(w: &mut dyn Write) -> io::Result<()> {
    let m = man(mount_helper_command(), "8");
    m.render_title(w)?;
    m.render_name_section(w)?;
    let mut r = Roff::new();
    section(&mut r, "SYNOPSIS");
    r.text([
        bold("mount.fuse.zsfs"),
        roman(" "),
        italic("SOURCE"),
        roman(" "),
        italic("MOUNTPOINT"),
        roman(" [-fnsvrw] [-o "),
        italic("OPTIONS"),
        roman("]"),
    ]);
    section(&mut r, "DESCRIPTION");
    para(
        &mut r,
        "mount(8) runs this helper for filesystems of type fuse.zsfs, so that \
         mount -t fuse.zsfs zsfs /mnt/x -o size=2G and fstab lines work. It runs \
         zsfs -o OPTIONS MOUNTPOINT, which returns once the mount is ready, or fails \
         with a message and nothing mounted. mount(8) looks for helpers only in /sbin.",
    );
    r.to_writer(w)?;
    m.render_options_section(w)?;
    let mut r = Roff::new();
    mount_options(&mut r);
    section(&mut r, "EXAMPLES");
    para(&mut r, "An fstab(5) line:");
    r.control("RS", []);
    r.control("nf", []);
    r.text([roman(
        "zsfs  /mnt/x  fuse.zsfs  size=2G,pool_limit=1G,nofail  0 0",
    )]);
    r.control("fi", []);
    r.control("RE", []);
    section(&mut r, "ENVIRONMENT");
    tagged(
        &mut r,
        vec![bold("ZSFS_BIN")],
        "The zsfs binary to run; else the one install.sh installed, else zsfs on PATH.",
    );
    section(&mut r, "EXIT STATUS");
    para(
        &mut r,
        "That of zsfs: 0 once mounted, 1 if the mount failed, 2 for a bad option.",
    );
    see_also(&mut r, &[("zsfs", "8"), ("fstab", "5")]);
    r.to_writer(w)?;
    w.flush()
}
