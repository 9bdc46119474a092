//! Ids (threads, spawn locations) numbered densely in order of first appearance, so that the
//! analyses keep their per-id state in vectors and look an id up without hashing in the common
//! case.
//!
//! The events of a few threads interleave finely and the polls of a few spawn locations
//! alternate, so a cache of the last id alone misses often; a small direct-mapped cache in front
//! of the hash map answers almost every lookup with one comparison.

use crate::ids::IdMap;

/// Slots of the direct-mapped cache (a power of two).
const CACHE: usize = 64;

/// A map from ids to dense indices `0..len()`, in order of first appearance.
#[derive(Debug)]
pub(crate) struct DenseIds {
    /// `(id, index + 1)` per slot; 0 marks an empty slot (any id, even `u64::MAX`, is valid).
    cache: Box<[(u64, usize); CACHE]>,
    map: IdMap<usize>,
    ids: Vec<u64>,
}

impl Default for DenseIds {
    fn default() -> Self {
        DenseIds {
            cache: Box::new([(0, 0); CACHE]),
            map: IdMap::default(),
            ids: Vec::new(),
        }
    }
}

impl DenseIds {
    #[inline]
    fn slot(id: u64) -> usize {
        // Fibonacci hashing: the top bits of the product mix every bit of the id.
        (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - CACHE.trailing_zeros())) as usize
    }

    /// The index of `id` and whether it is new (numbered `len()` before the call).
    #[inline]
    pub(crate) fn index(&mut self, id: u64) -> (usize, bool) {
        let slot = Self::slot(id);
        let (cached, plus_one) = self.cache[slot];
        if cached == id && plus_one != 0 {
            return (plus_one - 1, false);
        }
        self.index_slow(id, slot)
    }

    #[cold]
    #[inline(never)]
    fn index_slow(&mut self, id: u64, slot: usize) -> (usize, bool) {
        let next = self.ids.len();
        let index = *self.map.entry(id).or_insert(next);
        let new = index == next;
        if new {
            self.ids.push(id);
        }
        self.cache[slot] = (id, index + 1);
        (index, new)
    }

    /// The ids in order of their indices.
    pub(crate) fn ids(&self) -> &[u64] {
        &self.ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_numbered_in_order_of_first_appearance() {
        let mut ids = DenseIds::default();
        let input = [7u64, 0, u64::MAX, 7, 64, 0, 128, u64::MAX, 1 << 40, 7];
        let mut seen: Vec<u64> = Vec::new();
        for id in input {
            let expected = seen.iter().position(|&s| s == id);
            let (index, new) = ids.index(id);
            assert_eq!(new, expected.is_none());
            assert_eq!(index, expected.unwrap_or(seen.len()));
            if expected.is_none() {
                seen.push(id);
            }
            assert_eq!(ids.index(id), (index, false));
        }
        assert_eq!(ids.ids(), &seen[..]);
        // Many ids sharing cache slots.
        for id in 1000..3000u64 {
            ids.index(id);
        }
        for id in 1000..3000u64 {
            assert_eq!(ids.index(id), (seen.len() + (id - 1000) as usize, false));
        }
        assert_eq!(ids.ids().len(), seen.len() + 2000);
    }
}
