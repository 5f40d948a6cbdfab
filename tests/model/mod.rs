//! The fs core beside a byte vector per file: the operations the model
//! tests (`fs_model.rs`, `fs_recompress.rs`) apply to both, each checked
//! against what the model says.

use zsfs::fs::{Caller, Fallocate, Fs, ROOT_INO};

pub const ME: Caller = Caller { uid: 0, gid: 0 };

/// Regular files `f0`..`f{n-1}` in the root; their inode numbers.
pub fn mkfiles(fs: &Fs, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let name = format!("f{i}");
            fs.mknod(ROOT_INO, name.as_bytes(), libc::S_IFREG | 0o644, 0, 0, ME)
                .unwrap()
                .ino
        })
        .collect()
}

/// `bytes` at `off` of the model, growing it as a write does.
pub fn put(m: &mut Vec<u8>, off: u64, bytes: &[u8]) {
    let end = off as usize + bytes.len();
    if m.len() < end {
        m.resize(end, 0);
    }
    m[off as usize..end].copy_from_slice(bytes);
}

pub fn write(fs: &Fs, ino: u64, m: &mut Vec<u8>, off: u64, d: &[u8]) {
    assert_eq!(fs.write(ino, off, d).unwrap(), d.len());
    put(m, off, d);
}

pub fn truncate(fs: &Fs, ino: u64, m: &mut Vec<u8>, size: u64) {
    let s = zsfs::fs::SetAttr {
        size: Some(size),
        ..Default::default()
    };
    fs.setattr(ino, &s).unwrap();
    m.resize(size as usize, 0);
}

pub fn punch(fs: &Fs, ino: u64, m: &mut [u8], off: u64, len: u64) {
    fs.fallocate(ino, off, len, Fallocate::PunchHole).unwrap();
    let end = ((off + len) as usize).min(m.len());
    if (off as usize) < end {
        m[off as usize..end].fill(0);
    }
}

/// A read of `len` at `off` returns what the model holds there.
pub fn check_read(fs: &Fs, ino: u64, m: &[u8], off: u64, len: usize, file: usize) {
    let got = fs.read(ino, off, len).unwrap();
    let s = (off as usize).min(m.len());
    let e = (off as usize + len).min(m.len());
    assert!(got == m[s..e], "read({off}, {len}) of file {file} differs");
}
