//! Content-defined chunking (FastCDC 2020) fed by pushes, so a source can
//! hand over bytes as it produces them. The gear table is keyed by the
//! dedup secret: chunk boundaries (and so blob sizes) reveal nothing about
//! content to someone without it.

use std::borrow::Cow;

use fastcdc::v2020::{self, Normalization};
use serde::{Deserialize, Serialize};

/// Chunk size bounds, fixed per repository (changing them breaks dedup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    /// Smallest chunk, except the last of a stream.
    pub min_size: u32,
    /// Target average.
    pub avg_size: u32,
    /// Largest chunk.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        // Smaller than restic's 1 MiB average: dumps change in scattered
        // places, and each change costs about one average chunk.
        Self {
            min_size: 128 * 1024,
            avg_size: 512 * 1024,
            max_size: 2 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let ok = self.min_size as usize >= v2020::MINIMUM_MIN
            && self.min_size as usize <= v2020::MINIMUM_MAX
            && self.avg_size as usize >= v2020::AVERAGE_MIN
            && self.avg_size as usize <= v2020::AVERAGE_MAX
            && self.max_size as usize >= v2020::MAXIMUM_MIN
            && self.max_size as usize <= v2020::MAXIMUM_MAX
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.min_size.is_multiple_of(2)
            && self.avg_size.is_multiple_of(2)
            && self.max_size.is_multiple_of(2);
        if ok {
            Ok(())
        } else {
            Err(format!("chunker sizes out of range: {self:?}"))
        }
    }
}

pub(crate) struct Chunker {
    p: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
    buf: Vec<u8>,
    start: usize,
}

impl Chunker {
    pub(crate) fn new(p: ChunkerParams, seed: u64) -> Self {
        let (mask_s, mask_l) = v2020::select_masks(p.avg_size as usize, Normalization::Level1);
        let (gear, gear_ls) = v2020::get_gear_with_seed(seed);
        Self {
            p,
            mask_s,
            mask_l,
            gear,
            gear_ls,
            // Grown as bytes come (up to 2 * max): an item of a few bytes,
            // one of a million small objects, must not take (and, through
            // the allocator, leave behind) a buffer of megabytes.
            buf: Vec::new(),
            start: 0,
        }
    }

    fn cut(&self, data: &[u8]) -> usize {
        v2020::cut_gear(
            data,
            self.p.min_size as usize,
            self.p.avg_size as usize,
            self.p.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        )
        .1
    }

    /// Add bytes; `emit` receives every chunk whose end is now certain.
    pub(crate) fn push<E>(
        &mut self,
        mut data: &[u8],
        emit: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let max = self.p.max_size as usize;
        while !data.is_empty() {
            // Keep the buffer at most 2 * max so memory stays bounded
            // whatever the size of one push.
            let room = (2 * max).saturating_sub(self.buf.len() - self.start).max(1);
            let take = room.min(data.len());
            if self.start > 0 && self.buf.len() + take > 2 * max {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            while self.buf.len() - self.start >= max {
                let n = self.cut(&self.buf[self.start..self.start + max]);
                emit(&self.buf[self.start..self.start + n])?;
                self.start += n;
            }
        }
        Ok(())
    }

    /// End of stream: emit what is left.
    pub(crate) fn finish<E>(
        &mut self,
        emit: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.start < self.buf.len() {
            let n = self.cut(&self.buf[self.start..]);
            emit(&self.buf[self.start..self.start + n])?;
            self.start += n;
        }
        self.buf.clear();
        self.start = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], push_size: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(ChunkerParams::default(), seed);
        let mut out = Vec::new();
        let mut emit = |b: &[u8]| -> Result<(), ()> {
            out.push(b.to_vec());
            Ok(())
        };
        for piece in data.chunks(push_size) {
            c.push(piece, &mut emit).unwrap();
        }
        c.finish(&mut emit).unwrap();
        out
    }

    fn pseudo_random(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn boundaries_do_not_depend_on_push_sizes() {
        let data = pseudo_random(9 * 1024 * 1024 + 17, 7);
        let a = chunks(&data, 1, 1).len();
        let whole = chunks(&data, data.len(), 1);
        let odd = chunks(&data, 65_537, 1);
        assert_eq!(whole, odd);
        assert_eq!(a, whole.len());
        assert_eq!(whole.concat(), data);
        let p = ChunkerParams::default();
        for c in &whole[..whole.len() - 1] {
            assert!(c.len() >= p.min_size as usize && c.len() <= p.max_size as usize);
        }
        // A different key cuts differently.
        assert_ne!(chunks(&data, data.len(), 2), whole);
    }

    #[test]
    fn an_insertion_only_changes_nearby_chunks() {
        let data = pseudo_random(8 * 1024 * 1024, 3);
        let mut changed = data.clone();
        changed.splice(4_000_000..4_000_000, b"inserted".iter().copied());
        let a = chunks(&data, 1 << 20, 9);
        let b = chunks(&changed, 1 << 20, 9);
        let same = b.iter().filter(|c| a.contains(c)).count();
        assert!(same + 3 >= b.len(), "{same} of {} chunks reused", b.len());
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        assert!(chunks(&[], 10, 0).is_empty());
    }
}
