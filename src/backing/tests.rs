//! Unit tests of the backing file: records, space reuse, hole punching.

use super::record::{build_record, frame_ok, FRAME_HEADER};
use super::*;

#[test]
fn records_frames_and_space_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let b = BackingFile::create_at(&dir.path().join("bk")).unwrap();
    let (rec, offs) = build_record(&[(7, b"hello"), (9, &[1u8; 5000])]);
    let at = b.write_record(&rec).unwrap();
    assert_eq!(at, FILE_HEADER);
    b.add_record(at, rec.len() as u64, 2, 5005);
    let mut f = vec![0u8; FRAME_HEADER + 5000];
    b.read_at(&mut f, at + offs[1]).unwrap();
    assert!(frame_ok(&f, 9, 5000));
    assert!(!frame_ok(&f, 7, 5000), "wrong handle id is caught");
    f[100] ^= 1;
    assert!(!frame_ok(&f, 9, 5000), "flipped bit is caught");
    // A second record after it, then the first dies: its space is reused.
    let (rec2, _) = build_record(&[(1, &[2u8; 100])]);
    let at2 = b.write_record(&rec2).unwrap();
    b.add_record(at2, rec2.len() as u64, 1, 100);
    b.frame_dead(at + offs[0], 5);
    assert_eq!(b.stats().records, 2);
    b.frame_dead(at + offs[1], 5000);
    assert_eq!(b.stats().records, 1);
    b.check();
    let at3 = b.write_record(&rec2).unwrap();
    assert_eq!(at3, FILE_HEADER, "best fit reuses the freed range");
    b.add_record(at3, rec2.len() as u64, 1, 100);
    b.check();
}

#[test]
fn dead_records_are_punched_and_the_tail_truncated() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bk");
    let b = BackingFile::create_at(&p).unwrap();
    let data = vec![7u8; 64 * 1024];
    let (rec, offs) = build_record(&[(1, &data)]);
    let at: Vec<u64> = (0..3)
        .map(|_| {
            let o = b.write_record(&rec).unwrap();
            b.add_record(o, rec.len() as u64, 1, data.len() as u64);
            o
        })
        .collect();
    b.file.sync_all().unwrap();
    let blocks = |p: &Path| std::fs::metadata(p).unwrap().blocks() * 512;
    let full = blocks(&p);
    assert!(full >= 3 * 64 * 1024, "{full}");
    // The middle record dies: its whole blocks are punched.
    b.frame_dead(at[1] + offs[0], data.len());
    let punched = blocks(&p);
    assert!(
        punched <= full - 60 * 1024,
        "{full} -> {punched} bytes on disk"
    );
    assert_eq!(
        std::fs::metadata(&p).unwrap().len(),
        at[2] + rec.len() as u64
    );
    // The last one dies: the file is cut back to the first record.
    b.frame_dead(at[2] + offs[0], data.len());
    assert_eq!(
        std::fs::metadata(&p).unwrap().len(),
        at[0] + rec.len() as u64
    );
    b.check();
}

#[test]
fn refuses_foreign_files_and_creates_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("precious");
    std::fs::write(&p, b"do not overwrite").unwrap();
    let e = BackingFile::create_at(&p).err().unwrap();
    assert!(e.to_string().contains("refusing"), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), b"do not overwrite");
    let q = dir.path().join("ours");
    drop(BackingFile::create_at(&q).unwrap());
    assert_eq!(
        std::fs::metadata(&q).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(BackingFile::create_at(&q).expect("our own file is reused"));
    let t = BackingFile::create_temp_in(dir.path()).unwrap();
    assert!(t.name().contains("unlinked"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "temp file is not visible"
    );
}
