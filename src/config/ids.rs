//! `uid=` and `gid=`: a number, or a name looked up in the system's user
//! and group databases (NSS, so LDAP users work as with mount(8)).

use std::ffi::CString;

/// A numeric id, or a name resolved with `lookup`. `(uid_t)-1` is refused:
/// it means "no change" to chown, so it cannot own anything.
pub(crate) fn parse_id(s: &str, lookup: fn(&str) -> Option<u32>) -> Option<u32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u32>().ok().filter(|id| *id != u32::MAX);
    }
    lookup(s)
}

pub(crate) fn lookup_user(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero is a valid passwd (null pointers, zero ids).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives it.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
}

pub(crate) fn lookup_group(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    // Groups with many members need a larger buffer than users do.
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: all-zero is a valid group struct.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives it.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}
