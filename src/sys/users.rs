//! The system's user and group databases (NSS, so LDAP users work as with
//! mount(8)): names to ids for `uid=`/`gid=`, ids to names for `zsfs list`.

use std::ffi::{CStr, CString};

/// Room for one entry's strings: users need little, groups with many
/// members more.
const USER_BUF: usize = 16 * 1024;
const GROUP_BUF: usize = 64 * 1024;

/// Call a `get*_r` function with an out-struct and a string buffer of
/// `buf_len`, and read what it found with `read`.
fn lookup<T, R>(
    buf_len: usize,
    call: impl FnOnce(*mut T, *mut libc::c_char, usize, *mut *mut T) -> libc::c_int,
    read: impl FnOnce(&T) -> R,
) -> Option<R> {
    let mut buf = vec![0 as libc::c_char; buf_len];
    // SAFETY: the C structs used here (passwd, group) are valid all-zero.
    let mut out: T = unsafe { std::mem::zeroed() };
    let mut result: *mut T = std::ptr::null_mut();
    let rc = call(&mut out, buf.as_mut_ptr(), buf.len(), &mut result);
    // On success result points at out, whose strings live in buf (alive here).
    (rc == 0 && !result.is_null()).then(|| read(&out))
}

/// The uid of user `name`.
pub(crate) fn user_id(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    // SAFETY: every pointer passed is valid for the call.
    lookup(
        USER_BUF,
        |pw, buf, len, res| unsafe { libc::getpwnam_r(cname.as_ptr(), pw, buf, len, res) },
        |pw: &libc::passwd| pw.pw_uid,
    )
}

/// The gid of group `name`.
pub(crate) fn group_id(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    // SAFETY: every pointer passed is valid for the call.
    lookup(
        GROUP_BUF,
        |gr, buf, len, res| unsafe { libc::getgrnam_r(cname.as_ptr(), gr, buf, len, res) },
        |gr: &libc::group| gr.gr_gid,
    )
}

/// The login name of `uid`, if it has one.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    // SAFETY: every pointer passed is valid for the call.
    lookup(
        USER_BUF,
        |pw, buf, len, res| unsafe { libc::getpwuid_r(uid, pw, buf, len, res) },
        // SAFETY: getpwuid_r filled pw_name with a NUL-terminated string
        // in the buffer, which outlives this read.
        |pw: &libc::passwd| {
            unsafe { CStr::from_ptr(pw.pw_name) }
                .to_string_lossy()
                .into_owned()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_both_ways() {
        assert_eq!(user_id("root"), Some(0));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(user_id("no-such-user-zsfs"), None);
        assert_eq!(group_id("no-such-group-zsfs"), None);
    }
}
