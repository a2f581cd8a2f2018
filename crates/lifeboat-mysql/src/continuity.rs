//! Whether a stored binlog segment is whole, read back: every event's
//! checksum and size (the [`Reader`]'s checks), positions that only move
//! forward and end where the run's facts say, and GTIDs with no
//! transaction missing between two that are stored. `verify --read-data`
//! links the segments of each point-in-time window with
//! [`GtidLinks::follow`].

use std::collections::BTreeMap;

use lifeboat_store::{FullAccess, Index, ManifestItem, NoProgress, Repository};
use serde::Serialize;

use crate::binlog::{self, kind, Gtid, Header, Reader};
use crate::error::Result;

/// One stored segment and what its run's facts say of it.
#[derive(Debug, Clone)]
pub struct SegmentSpan {
    pub item: ManifestItem,
    /// Where its events begin and end in the server's file.
    pub start: u64,
    pub end: u64,
}

/// What a segment holds, read whole.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SegmentCheck {
    pub events: u64,
    pub transactions: u64,
    /// Holes and disagreements found inside it.
    pub holes: Vec<String>,
    /// The first and last GTID of each GTID stream (MariaDB domain, MySQL
    /// source UUID), to link segments.
    #[serde(skip)]
    first: BTreeMap<Vec<u8>, Gtid>,
    #[serde(skip)]
    last: BTreeMap<Vec<u8>, Gtid>,
}

/// The stream a GTID belongs to and its number in it.
fn stream(g: &Gtid) -> (Vec<u8>, u64) {
    match g {
        Gtid::Maria { domain, seq, .. } => (domain.to_le_bytes().to_vec(), *seq),
        Gtid::Mysql { uuid, number } => (uuid.to_vec(), *number),
    }
}

/// The number after `prev` in its stream, as a GTID.
fn after(prev: &Gtid) -> String {
    match prev {
        Gtid::Maria {
            domain,
            server,
            seq,
        } => Gtid::Maria {
            domain: *domain,
            server: *server,
            seq: seq + 1,
        }
        .to_string(),
        Gtid::Mysql { uuid, number } => Gtid::Mysql {
            uuid: *uuid,
            number: number + 1,
        }
        .to_string(),
    }
}

/// `next` must be the transaction after `prev` in its stream.
fn link(prev: &Gtid, next: &Gtid, holes: &mut Vec<String>) {
    holes.extend(hole(prev, next));
}

/// Why `next` is not the transaction after `prev` in their stream, if it
/// is not.
pub(crate) fn hole(prev: &Gtid, next: &Gtid) -> Option<String> {
    let (_, p) = stream(prev);
    let (_, n) = stream(next);
    if n == p + 1 {
        return None;
    }
    Some(if n <= p {
        format!("GTID {next} comes after {prev}: a transaction stored twice or out of order")
    } else {
        format!(
            "GTID {next} follows {prev}: the transactions from {} on are not stored",
            after(prev)
        )
    })
}

/// Read `span`'s item whole and check it.
pub fn check_segment(
    repo: &Repository<FullAccess>,
    index: &Index,
    span: &SegmentSpan,
) -> Result<SegmentCheck> {
    let mut check = SegmentCheck::default();
    let mut reader = Reader::new();
    let mut next_pos = span.start;
    let read = {
        let mut sink = Sink(|buf: &[u8]| {
            reader.push(buf, &mut |f, e| {
                let h = Header::parse(e)
                    .ok_or_else(|| binlog::damaged("a binlog event is cut short"))?;
                if h.kind == kind::FORMAT_DESCRIPTION {
                    if span.start == 4 {
                        next_pos = 4 + u64::from(h.size);
                    }
                    return Ok(());
                }
                check.events += 1;
                next_pos = binlog::unwrap_pos(next_pos, h.log_pos, h.size);
                if matches!(h.kind, kind::GTID | kind::MARIA_GTID) {
                    if let Some(g) = Gtid::parse(f, e) {
                        check.transactions += 1;
                        let (key, _) = stream(&g);
                        if let Some(prev) = check.last.get(&key) {
                            link(prev, &g, &mut check.holes);
                        }
                        check.first.entry(key.clone()).or_insert_with(|| g.clone());
                        check.last.insert(key, g);
                    }
                }
                Ok(())
            })
        });
        repo.restore_item(index, &span.item, &mut sink, &NoProgress)
    };
    if let Err(e) = read {
        check.holes.push(format!("{}: {e}", span.item.name));
        return Ok(check);
    }
    if let Err(e) = reader.finish() {
        check.holes.push(format!("{}: {e}", span.item.name));
    }
    if next_pos != span.end {
        check.holes.push(format!(
            "{} ends at position {next_pos}, its run says {}",
            span.item.name, span.end
        ));
    }
    Ok(check)
}

/// The GTIDs of a window's segments, followed in log order.
#[derive(Debug, Default)]
pub struct GtidLinks {
    last: BTreeMap<Vec<u8>, Gtid>,
}

impl GtidLinks {
    /// The next segment of the window: its first GTID of each stream must
    /// follow the last one stored before it (unless the window's pieces
    /// overlap there: `overlaps`).
    pub fn follow(&mut self, seg: &SegmentCheck, overlaps: bool, holes: &mut Vec<String>) {
        if !overlaps {
            for (key, first) in &seg.first {
                if let Some(prev) = self.last.get(key) {
                    link(prev, first, holes);
                }
            }
        }
        self.last
            .extend(seg.last.iter().map(|(k, g)| (k.clone(), g.clone())));
    }
}

/// A writer that hands each buffer to a closure.
struct Sink<F: FnMut(&[u8]) -> Result<()>>(F);

impl<F: FnMut(&[u8]) -> Result<()>> std::io::Write for Sink<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (self.0)(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maria(seq: u64) -> Gtid {
        Gtid::Maria {
            domain: 0,
            server: 1,
            seq,
        }
    }

    fn seg(first: &[Gtid], last: &[Gtid]) -> SegmentCheck {
        let key = |g: &Gtid| stream(g).0;
        SegmentCheck {
            first: first.iter().map(|g| (key(g), g.clone())).collect(),
            last: last.iter().map(|g| (key(g), g.clone())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn gtids_link_across_segments_and_name_what_is_missing() {
        let other = Gtid::Maria {
            domain: 7,
            server: 2,
            seq: 40,
        };
        let mut links = GtidLinks::default();
        let mut holes = Vec::new();
        links.follow(
            &seg(&[maria(1), other.clone()], &[maria(5), other]),
            false,
            &mut holes,
        );
        // Domain 7 absent here, then back at 41: no hole.
        links.follow(&seg(&[maria(6)], &[maria(9)]), false, &mut holes);
        let back = Gtid::Maria {
            domain: 7,
            server: 2,
            seq: 41,
        };
        let one = [back];
        links.follow(&seg(&one, &one), false, &mut holes);
        assert!(holes.is_empty(), "{holes:?}");
        links.follow(&seg(&[maria(12)], &[maria(12)]), false, &mut holes);
        assert_eq!(
            holes,
            ["GTID 0-1-12 follows 0-1-9: the transactions from 0-1-10 on are not stored"]
        );
        holes.clear();
        links.follow(&seg(&[maria(12)], &[maria(13)]), false, &mut holes);
        assert!(
            holes[0].contains("stored twice or out of order"),
            "{holes:?}"
        );
        // Where pieces overlap, the first GTIDs are not linked.
        holes.clear();
        links.follow(&seg(&[maria(10)], &[maria(14)]), true, &mut holes);
        assert!(holes.is_empty(), "{holes:?}");
        let mysql = |n| Gtid::Mysql {
            uuid: [0xab; 16],
            number: n,
        };
        let mut holes = Vec::new();
        link(&mysql(77), &mysql(80), &mut holes);
        assert!(holes[0].ends_with(":78 on are not stored"), "{holes:?}");
    }
}
