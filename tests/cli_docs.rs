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
        "noexec",
        "nofail",
        "x-",
    ] {
        assert!(
            section.contains(&format!("`{opt}")),
            "README options table lacks {opt}"
        );
        assert!(
            zsfs::options::OPTIONS_HELP.contains(opt),
            "zsfs --help lacks {opt}"
        );
    }
}
