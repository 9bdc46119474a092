//! The cut that a snapshot or the end of a full trace takes across all threads' open chunks
//! (`crate::record::chunk::OpenChunk`) without stopping them.
//!
//! The owner replaces its open chunk under the slot's lock and hands the old one to the consumers
//! (the window, a full trace) *before* releasing that lock. A cut reads every open chunk first and
//! the sealed chunks second. So a chunk sealed during a cut is seen either as open (read in its
//! slot before the swap) or as sealed (handed over before the slot was read), possibly both, and
//! never neither; a chunk seen both ways is taken once, in its sealed, longer form.

use std::collections::HashSet;

use crate::record::chunk::{Chunk, ChunkView, OpenChunk};
use crate::record::sync::Arc;

/// Takes a consistent cut: the open chunks, then the sealed chunks `sealed` returns. Every event
/// published before the cut began is in the result exactly once. Sealed chunks come first, in the
/// order given.
pub(crate) fn cut<'a>(
    open: impl IntoIterator<Item = &'a OpenChunk>,
    sealed: impl FnOnce() -> Vec<Arc<Chunk>>,
) -> Vec<ChunkView> {
    let open: Vec<ChunkView> = open.into_iter().filter_map(OpenChunk::view).collect();
    let sealed = sealed();
    let sealed_seqs: HashSet<u64> = sealed.iter().map(|c| c.seq).collect();
    let mut views: Vec<ChunkView> = sealed
        .into_iter()
        .map(|chunk| ChunkView {
            len: chunk.committed(),
            chunk,
        })
        .collect();
    views.extend(
        open.into_iter()
            .filter(|v| !sealed_seqs.contains(&v.chunk.seq)),
    );
    views.retain(|v| v.len > 0);
    views
}
