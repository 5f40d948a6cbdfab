//! The README stays true: its test command is the one .ci/run runs, and its
//! options table names every option zsfs accepts.

use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn readme_test_command_is_what_ci_runs() {
    let readme = read("README.md");
    let section = &readme[readme.find("## Test it").expect("README has `## Test it`")..];
    let cmd = section
        .lines()
        .find(|l| l.starts_with("cargo test"))
        .expect("a cargo test command in `## Test it`");
    let ci = read(".ci/run");
    let ci_cmds: Vec<&str> = ci.lines().filter(|l| l.starts_with("cargo test")).collect();
    assert_eq!(
        ci_cmds,
        vec![cmd],
        ".ci/run runs exactly the README's test command"
    );
}

#[test]
fn readme_options_table_names_every_option() {
    let readme = read("README.md");
    let section = &readme[readme.find("## Options").expect("README has `## Options`")..];
    for opt in [
        "size=",
        "nr_inodes=",
        "mode=",
        "uid=",
        "gid=",
        "block_size=",
        "threads=",
        "cache=",
        "allow_other",
        "pool_limit=",
        "second_chance=",
        "accept_threshold=",
        "backing=",
        "control=",
        "log=",
        "noexec",
        "nofail",
        "x-",
    ] {
        assert!(
            section.contains(&format!("`{opt}")),
            "README options table lacks {opt}"
        );
        assert!(
            zsfs::config::OPTIONS_HELP.contains(opt),
            "zsfs --help lacks {opt}"
        );
    }
}

/// `zsfs __generate WHAT` into a fresh directory.
fn generate(what: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zsfs"))
        .args(["__generate", what])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "zsfs __generate {what}: {out:?}");
    dir
}

fn require(prog: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{prog}` is not installed; install it with: apt-get install {package}"
    );
}

#[test]
fn man_pages_render_without_warnings_and_document_every_option_and_field() {
    require("man", "man-db");
    require("groff", "groff-base");
    let dir = generate("man");
    for page in ["zsfs.8", "zsfs-stats.1", "mount.fuse.zsfs.8"] {
        let path = dir.path().join(page);
        let out = std::process::Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        assert!(out.status.success(), "man -l {page}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.trim().is_empty(),
            "man --warnings -l {page}:\n{stderr}"
        );
        // What a reader sees: bold and italics rendered as overstrikes,
        // which `col -b` would remove; strip them by hand.
        let text = String::from_utf8_lossy(&out.stdout);
        let plain = strip_overstrike(&text);
        assert!(
            plain.lines().count() > 20,
            "{page} is nearly empty:\n{plain}"
        );
        let troff = std::fs::read_to_string(&path).unwrap();
        if page != "zsfs-stats.1" {
            for o in zsfs::config::MOUNT_OPTIONS {
                let first = o.form.split(['=', ',', '|']).next().unwrap();
                assert!(plain.contains(first), "{page} lacks mount option {first}");
            }
        }
        if page == "zsfs.8" {
            for f in zsfs::control::report::FIELDS {
                assert!(plain.contains(f.name), "zsfs.8 lacks field {}", f.name);
            }
            for s in ["SIGNALS", "EXIT STATUS", "CONTROL FILE", "zsfs list"] {
                assert!(plain.contains(s), "zsfs.8 lacks {s}");
            }
        }
        if page == "zsfs-stats.1" {
            for f in zsfs::control::report::FIELDS {
                let m = zsfs::control::prometheus::metric_name(f);
                assert!(plain.contains(&m), "zsfs-stats.1 lacks metric {m}");
            }
            assert!(plain.contains("--prometheus") && plain.contains("--classes"));
        }
        assert!(troff.starts_with(".ie") || troff.contains(".TH"), "{page}");
    }
}

/// Man output for a non-terminal may still carry `X\bX` (bold) and `_\bX`
/// (underline) overstrikes.
fn strip_overstrike(s: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in s.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect::<String>().replace('\u{2010}', "-")
}

#[test]
fn completions_load_in_bash_and_zsh_file_is_a_compdef() {
    require("bash", "bash");
    let dir = generate("completions");
    let bash = dir.path().join("zsfs.bash");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p zsfs", bash.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let spec = String::from_utf8_lossy(&out.stdout);
    assert!(spec.contains("zsfs"), "{spec}");
    // The function completes subcommands and their options.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}'; COMP_WORDS=(zsfs l); COMP_CWORD=1; COMP_LINE='zsfs l'; COMP_POINT=6; \
             _zsfs zsfs l zsfs; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        ))
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(
        words.lines().any(|w| w == "list"),
        "completions of `zsfs l`: {words:?}"
    );
    let zsh = std::fs::read_to_string(dir.path().join("_zsfs")).unwrap();
    assert!(
        zsh.starts_with("#compdef zsfs"),
        "{}",
        &zsh[..40.min(zsh.len())]
    );
    assert!(zsh.contains("--prometheus"));
}

#[test]
fn help_lists_every_mount_option_from_the_table() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zsfs"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for o in zsfs::config::MOUNT_OPTIONS {
        // Long forms are wrapped; their first word is enough.
        let first = o.form.split(' ').next().unwrap();
        assert!(help.contains(first), "--help lacks {first}:\n{help}");
    }
    for line in zsfs::config::OPTIONS_HELP.lines() {
        assert!(line.len() <= 80, "--help line over 80 columns: {line:?}");
    }
}
