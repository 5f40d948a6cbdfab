//! `/proc/self/mountinfo` (proc(5)): one line per mount,
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)         (6)      (7)     (8) (9)   (10)      (11)
//! ```
//!
//! Field 3 is the device, 5 the mount point, 6 the per-mount options; after
//! the `-` separator come the filesystem type, the source and the
//! superblock options. The kernel escapes space, tab, newline and backslash
//! in paths and in the source as `\ooo`; [`unescape`] undoes exactly that.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields zsfs needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted filesystem.
    pub dev: String,
    /// Where it is mounted, unescaped.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,nodev,relatime`).
    pub mount_options: String,
    /// Filesystem type (`fuse`, `fuse.zsfs`, `tmpfs`, ...).
    pub fstype: String,
    /// The mount source, unescaped (`zsfs` unless the user named it).
    pub source: String,
    /// Superblock options (`rw,user_id=0,group_id=0,...`).
    pub super_options: String,
}

impl MountEntry {
    /// Whether this may be a zsfs mount: `fuse.zsfs` (mounted through
    /// fusermount3, which passes the subtype) or plain `fuse` (root mounts
    /// with mount(2), where the type stays `fuse` because that is what df
    /// and xfstests' FSTYP=fuse expect). Only the control file at its root
    /// tells a zsfs `fuse` mount from another FUSE filesystem's.
    pub fn may_be_zsfs(&self) -> bool {
        self.fstype == "fuse.zsfs" || self.fstype == "fuse"
    }
}

/// Parse mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let f: Vec<&str> = line.split(' ').collect();
    let sep = f.iter().position(|x| *x == "-")?;
    if sep < 6 {
        return None;
    }
    Some(MountEntry {
        dev: f[2].to_string(),
        mount_point: PathBuf::from(OsStr::from_bytes(&unescape(f[4]))),
        mount_options: f[5].to_string(),
        fstype: f.get(sep + 1)?.to_string(),
        source: String::from_utf8_lossy(&unescape(f.get(sep + 2)?)).into_owned(),
        super_options: f.get(sep + 3).unwrap_or(&"").to_string(),
    })
}

/// Undo mountinfo's `\ooo` escapes; anything else is kept as it is.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u16, |v, c| v * 8 + u16::from(c - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// This process's mounts, in mount order; empty if mountinfo is unreadable.
pub fn mounts() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// The topmost mount at exactly `path` (no canonicalisation), if any.
pub fn mount_at(path: &Path) -> Option<MountEntry> {
    mounts().into_iter().rev().find(|m| m.mount_point == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_and_unescaped() {
        let text = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/root rw
85 22 0:52 / /tmp/with\\040space rw,nosuid,nodev,relatime shared:40 - fuse zsfs rw,user_id=0,group_id=0
86 22 0:53 / /mnt/z rw,nosuid,nodev - fuse.zsfs my\\040cache rw,user_id=1000
garbage line
1 2 3 - x
";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].mount_point, PathBuf::from("/tmp/with space"));
        assert_eq!(m[1].dev, "0:52");
        assert_eq!(m[1].fstype, "fuse");
        assert_eq!(m[1].source, "zsfs");
        assert_eq!(m[1].mount_options, "rw,nosuid,nodev,relatime");
        assert_eq!(m[1].super_options, "rw,user_id=0,group_id=0");
        assert!(m[1].may_be_zsfs());
        assert!(!m[0].may_be_zsfs());
        assert_eq!(m[2].fstype, "fuse.zsfs");
        assert_eq!(m[2].source, "my cache");
        assert!(m[2].may_be_zsfs());
    }

    #[test]
    fn unescape_takes_only_three_octal_digits() {
        assert_eq!(unescape("a\\134b\\011"), b"a\\b\t".to_vec());
        assert_eq!(unescape("trailing\\04"), b"trailing\\04".to_vec());
        assert_eq!(unescape("a\\134b\\9"), b"a\\b\\9".to_vec());
        assert_eq!(unescape("\\777"), b"\\777".to_vec());
    }
}
