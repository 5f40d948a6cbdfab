//! Small building blocks shared by more than one layer.

pub(crate) mod mapping;
pub(crate) mod table;

/// Give back a Vec's spare capacity beyond a quarter more than it holds,
/// once that spare room is more than a 4 KiB page of entries. For lists
/// that grew by doubling to a peak (free ids, free pages) and are trimmed
/// after the pool shrinks; the quarter keeps the next pushes from
/// reallocating at once.
pub(crate) fn trim_slack<T>(v: &mut Vec<T>) {
    let page = 4096 / std::mem::size_of::<T>().max(1);
    if v.capacity() - v.len() > (v.len() / 4).max(page) {
        v.shrink_to(v.len() + v.len() / 4);
    }
}

#[cfg(test)]
mod tests {
    use super::trim_slack;

    #[test]
    fn trimmed_lists_keep_a_quarter_of_slack() {
        let mut v = vec![0u64; 10_000];
        v.truncate(2_000);
        trim_slack(&mut v);
        assert!(
            v.capacity() >= 2_000 && v.capacity() <= 2_500,
            "{}",
            v.capacity()
        );
        // Little slack, or little in all: left alone.
        let cap = v.capacity();
        trim_slack(&mut v);
        assert_eq!(v.capacity(), cap);
        let mut small: Vec<u64> = Vec::with_capacity(300);
        small.push(1);
        trim_slack(&mut small);
        assert_eq!(small.capacity(), 300);
    }
}
