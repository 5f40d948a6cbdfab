//! A process's groups, for the one rule that needs them: Linux drops a
//! file's setgid bit without group-exec only for a caller outside the
//! file's group (`setattr_should_drop_sgid`). A FUSE request names the
//! caller's pid and primary gid; the supplementary groups are in
//! `/proc/PID/status`.

/// Whether process `pid` (primary group `gid`) is in group `g`. A process
/// that is gone, or a status that cannot be read, counts as outside: the
/// bit is then dropped, the safe side.
pub fn in_group(pid: u32, gid: u32, g: u32) -> bool {
    gid == g
        || std::fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|s| supplementary(&s).any(|x| x == g))
}

/// The `Groups:` line of a `/proc/PID/status` text.
fn supplementary(status: &str) -> impl Iterator<Item = u32> + '_ {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .into_iter()
        .flat_map(|l| l.split_whitespace().filter_map(|w| w.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_status_line() {
        let s = "Name:\tx\nGid:\t5\t5\t5\t5\nGroups:\t4 24 27 \nNgid:\t0\n";
        assert_eq!(supplementary(s).collect::<Vec<_>>(), [4, 24, 27]);
        assert_eq!(supplementary("Name: x\n").count(), 0);
        // This process is in its own groups.
        let (pid, gid) = (std::process::id(), unsafe { libc::getgid() });
        assert!(in_group(pid, gid, gid));
        assert!(!in_group(u32::MAX, 1, 2));
    }
}
