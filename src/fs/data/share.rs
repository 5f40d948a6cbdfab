//! The two halves of a block-sharing copy (copy_file_range of whole
//! blocks): [`FileData::share_blocks`] takes store references under the
//! source's read lock, [`FileData::install_shared`] swaps them in under the
//! destination's write lock.

use super::file::FileData;
use super::{store_err, Ctx};
use crate::fs::FsResult;
use crate::store::Block;

impl FileData {
    /// The source half of a block-sharing copy: another reference
    /// ([`Store::share`](crate::store::Store::share)) to each of blocks
    /// `first..first + n`, `None` for a hole, stopping before the first block not wholly below `size` (its
    /// bytes past the end are zero but may not replace the destination's).
    /// A block in the write buffer is stored first (one compression), since
    /// the buffer is its content. On an error the references taken so far
    /// are returned with it, for the caller to free.
    pub(crate) fn share_blocks(
        &self,
        cx: &Ctx,
        first: u64,
        n: u64,
    ) -> (Vec<Option<Block>>, FsResult<()>) {
        let n = n.min((self.size / cx.bs()).saturating_sub(first));
        let mut out = Vec::with_capacity(n as usize);
        for idx in first..first + n {
            let b = match (&self.dirty, self.blocks.get(&idx)) {
                (Some(d), _) if d.idx == idx => cx.store.put(&d.buf),
                (_, Some(b)) => cx.store.share(b),
                (_, None) => {
                    out.push(None);
                    continue;
                }
            };
            match b {
                Ok(b) => out.push(Some(b)),
                Err(e) => return (out, Err(store_err(e))),
            }
        }
        (out, Ok(()))
    }

    /// The destination half: `src[k]` becomes block `first + k` (`None` a
    /// hole), replacing what was there, and the size grows to cover every
    /// block installed. Space is reserved as a write does, once per block
    /// index that becomes present; a shared object thus counts once per
    /// file block holding it, like every other block. Stops at ENOSPC and
    /// returns the blocks installed (an error when none were); replaced and
    /// unused blocks go to `old`, to be freed after the lock is dropped.
    pub(crate) fn install_shared(
        &mut self,
        cx: &Ctx,
        first: u64,
        src: Vec<Option<Block>>,
        old: &mut Vec<Block>,
    ) -> FsResult<u64> {
        let bs = cx.bs();
        let total = src.len() as u64;
        let mut done = 0u64;
        let mut src = src.into_iter();
        let mut result = Ok(());
        for b in src.by_ref() {
            let idx = first + done;
            let r = match b {
                Some(b) => self.install(cx, idx, b, old),
                None => {
                    self.make_hole(cx, idx, old);
                    Ok(())
                }
            };
            if let Err(e) = r {
                result = Err(e);
                break;
            }
            done += 1;
            self.size = self.size.max((idx + 1) * bs);
        }
        old.extend(src.flatten());
        match result {
            Err(e) if done == 0 && total > 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Block `idx` becomes a hole: the write buffer holding it is dropped,
    /// the stored block goes to `old`, and its space is released.
    fn make_hole(&mut self, cx: &Ctx, idx: u64, old: &mut Vec<Block>) {
        let mut present = false;
        if self.dirty.as_ref().is_some_and(|d| d.idx == idx) {
            self.dirty = None;
            cx.space.give_buffer();
            present = true;
        }
        if let Some(b) = self.blocks.remove(&idx) {
            old.push(b);
            present = true;
        }
        if present {
            cx.space.release(1);
        }
    }
}
