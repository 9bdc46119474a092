//! One worker busy while another idles: each worker's busy time (unparked, less its long polls,
//! which are their own finding) per 100 ms slice of the window, and the longest run of slices in
//! which one worker was busy, tasks waited on it to be polled, and another worker was idle. The
//! work may move between workers and the imbalance still shows: the slices compare whichever
//! workers are busiest and idlest in each. A single busy task with nothing waiting behind it is
//! not an imbalance: one task cannot use two workers.

use crate::model::IdMap;

/// The width of a slice.
pub(super) const SLICE_NS: u64 = 100_000_000;
/// A worker busy at least this share of a slice is busy in it (per mille).
const BUSY_PER_MILLE: u64 = 900;
/// A worker busy at most this share of a slice is idle in it (per mille).
const IDLE_PER_MILLE: u64 = 200;
/// A poll that waited at least this long shows work queued on its worker.
const QUEUED_NS: u64 = 1_000_000;
/// Slices kept at most (a window of 2.8 hours); later time is not looked at.
const MAX_SLICES: usize = 100_000;

/// The longest imbalance.
#[derive(Clone, Debug, Default)]
pub(super) struct Streak {
    pub start: u64,
    pub end: u64,
    /// The busiest worker of its first slice.
    pub busy: u64,
    /// The idlest worker of its first slice.
    pub idle: u64,
    /// The idle workers' mean busy share over the streak, per mille.
    pub idle_per_mille: u64,
    /// The locations that led its slices (see `Slices::leaders`), with their margin of polling
    /// time, the most first.
    pub locations: Vec<(u64, u64)>,
}

/// Busy time per worker and slice.
#[derive(Default)]
pub(super) struct Slices {
    /// The start of slice 0.
    origin: Option<u64>,
    /// Per worker thread: busy ns per slice (unparked), and long-poll ns per slice.
    busy: IdMap<(Vec<u64>, Vec<u64>)>,
    /// Per worker thread: the slices in which one of its polls had waited `QUEUED_NS` or more.
    queued: IdMap<Vec<bool>>,
    /// Per slice: the location that polled the most in it, as a majority vote weighted by
    /// polling time (one comparison per poll; exact when one location dominates the slice,
    /// which is what an imbalance's evidence needs).
    leaders: Vec<(u64, u64)>,
}

impl Slices {
    /// Slices start at the window's first event.
    pub fn set_origin(&mut self, time: u64) {
        self.origin.get_or_insert(time - time % SLICE_NS);
    }

    fn index(&mut self, time: u64) -> usize {
        let origin = *self.origin.get_or_insert(time - time % SLICE_NS);
        (time.saturating_sub(origin) / SLICE_NS) as usize
    }

    /// Adds `[start, end)` to `slices`, split at slice bounds.
    fn add(&mut self, thread: u64, start: u64, end: u64, long: bool) {
        if end <= start {
            return;
        }
        let first = self.index(start);
        let origin = self.origin.unwrap_or(0);
        let entry = self.busy.entry(thread).or_default();
        let slices = if long { &mut entry.1 } else { &mut entry.0 };
        let mut t = start.max(origin);
        let mut i = first;
        while t < end && i < MAX_SLICES {
            let slice_end = origin.saturating_add((i as u64 + 1) * SLICE_NS);
            let upto = end.min(slice_end);
            if slices.len() <= i {
                slices.resize(i + 1, 0);
            }
            slices[i] = slices[i].saturating_add(upto - t);
            t = upto;
            i += 1;
        }
    }

    /// A worker was unparked from `start` to `end`.
    pub fn busy(&mut self, thread: u64, start: u64, end: u64) {
        self.add(thread, start, end, false);
    }

    /// A poll began on a worker at `time` after waiting `wait` to be polled.
    #[inline]
    pub fn waited(&mut self, thread: u64, time: u64, wait: u64) {
        if wait >= QUEUED_NS {
            self.queued(thread, time);
        }
    }

    fn queued(&mut self, thread: u64, time: u64) {
        let i = self.index(time);
        if i >= MAX_SLICES {
            return;
        }
        let slices = self.queued.entry(thread).or_default();
        if slices.len() <= i {
            slices.resize(i + 1, false);
        }
        slices[i] = true;
    }

    /// A poll ended on a worker; `long` when it reached the blocking threshold.
    pub fn poll(&mut self, thread: u64, location: u64, start: u64, end: u64, long: bool) {
        if long {
            self.add(thread, start, end, true);
        }
        let i = self.index(end);
        if i >= MAX_SLICES {
            return;
        }
        if self.leaders.len() <= i {
            self.leaders.resize(i + 1, (0, 0));
        }
        let ns = end.saturating_sub(start);
        let leader = &mut self.leaders[i];
        if leader.0 == location {
            leader.1 = leader.1.saturating_add(ns);
        } else if leader.1 > ns {
            leader.1 -= ns;
        } else {
            *leader = (location, ns - leader.1);
        }
    }

    /// The longest run of slices with a busy worker and an idle one, among `workers` (at least
    /// two), at least `min_ns` long.
    pub fn longest(&mut self, workers: &[u64], min_ns: u64) -> Option<Streak> {
        if workers.len() < 2 {
            return None;
        }
        let origin = self.origin?;
        let slices = self.busy.values().map(|(b, _)| b.len()).max().unwrap_or(0);
        let share = |thread: u64, i: usize| -> u64 {
            let Some((busy, long)) = self.busy.get(&thread) else {
                return 0;
            };
            let b = busy.get(i).copied().unwrap_or(0);
            let l = long.get(i).copied().unwrap_or(0);
            b.saturating_sub(l).min(SLICE_NS) * 1000 / SLICE_NS
        };
        let mut best: Option<(usize, usize, u64, u64, u64)> = None;
        let mut current: Option<(usize, u64, u64, u64)> = None;
        for i in 0..=slices {
            let mut shares: Vec<(u64, u64)> = workers.iter().map(|&w| (share(w, i), w)).collect();
            shares.sort();
            let queued = |thread: u64| {
                self.queued
                    .get(&thread)
                    .is_some_and(|q| q.get(i).copied().unwrap_or(false))
            };
            let imbalanced = i < slices
                && shares
                    .last()
                    .is_some_and(|s| s.0 >= BUSY_PER_MILLE && queued(s.1))
                && shares[0].0 <= IDLE_PER_MILLE;
            match (imbalanced, current.as_mut()) {
                (true, Some(c)) => c.3 += shares[0].0,
                (true, None) => {
                    let busy = shares.last().map_or(0, |s| s.1);
                    current = Some((i, busy, shares[0].1, shares[0].0));
                }
                (false, Some(&mut (first, busy, idle, idle_sum))) => {
                    let len = i - first;
                    if best.is_none_or(|b| len > b.1 - b.0) {
                        best = Some((first, i, busy, idle, idle_sum / len as u64));
                    }
                    current = None;
                }
                (false, None) => {}
            }
        }
        let (first, last, busy, idle, idle_per_mille) = best?;
        let start = origin.saturating_add(first as u64 * SLICE_NS);
        let end = origin.saturating_add(last as u64 * SLICE_NS);
        if end.saturating_sub(start) < min_ns {
            return None;
        }
        let mut locations: IdMap<u64> = IdMap::default();
        for &(l, ns) in self.leaders.get(first..last).unwrap_or(&[]) {
            if ns > 0 {
                let e = locations.entry(l).or_default();
                *e = e.saturating_add(ns);
            }
        }
        let mut locations: Vec<(u64, u64)> = locations.into_iter().collect();
        locations.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Some(Streak {
            start,
            end,
            busy,
            idle,
            idle_per_mille,
            locations,
        })
    }
}
