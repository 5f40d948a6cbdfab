//! Reading an extended attribute of a path: how `zsfs stats PATH` asks a
//! file for its figures (`zsfs.usage`) and `zsfs -o remount` asks the
//! control file why it refused (`zsfs.last_error`).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Largest value read: both of zsfs's virtual xattrs are a few lines.
const MAX_VALUE: usize = 4096;

/// The value of xattr `name` of `path` (following symlinks).
pub(crate) fn get(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let nul = |_| io::Error::from(io::ErrorKind::InvalidInput);
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(nul)?;
    let cname = CString::new(name).map_err(nul)?;
    let mut buf = vec![0u8; MAX_VALUE];
    // SAFETY: both strings are NUL-terminated and buf is valid for its length.
    let n = unsafe {
        libc::getxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_xattr_is_an_error_with_its_errno() {
        let dir = tempfile::tempdir().unwrap();
        let e = get(dir.path(), "user.zsfs-no-such").unwrap_err();
        assert!(
            matches!(
                e.raw_os_error(),
                Some(libc::ENODATA) | Some(libc::EOPNOTSUPP)
            ),
            "{e}"
        );
        assert_eq!(
            get(Path::new("a\0b"), "user.x").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
