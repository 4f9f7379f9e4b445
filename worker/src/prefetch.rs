//! Adaptive prefetch: how many unacknowledged chunks a worker holds, derived from what its chunks cost.
//!
//! A chunk occupies a prefetch slot while it computes and while its result waits for the broker's confirm
//! (a disk sync, about 2 ms here). By Little's law, keeping `threads` threads busy takes
//! `threads x (compute + overhead) / compute` slots. Heavy chunks (compute >> overhead) need little more
//! than one per thread, so a worker never hoards chunks an idle worker could take; tiny chunks need many,
//! or throughput is capped at `prefetch / overhead`. The target is clamped to
//! `[threads + 1, threads x 32]` and only changed when it moves by half or more, at most once a second.
//! A decrease must also be wanted for [`DECREASE_AFTER`] in a row: every change is a re-subscription (the
//! broker requeues deliveries already on their way to the old consumer), and for tiny chunks a noisy
//! sample or two would otherwise make the prefetch flap, which cost a quarter of the throughput.

use std::time::{Duration, Instant};

/// How strongly a new sample moves the averages.
const SMOOTHING: f64 = 0.2;
/// Samples before the first change.
const WARM_UP: u32 = 8;
/// Slots per thread at most.
const MAX_PER_THREAD: u32 = 32;
/// Least time between changes.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How long a lower prefetch must be wanted before it is applied.
const DECREASE_AFTER: Duration = Duration::from_secs(3);

/// Tracks chunk costs and proposes a new prefetch when the current one no longer fits.
#[derive(Debug)]
pub struct AdaptivePrefetch {
    threads: u32,
    current: u16,
    compute_secs: f64,
    overhead_secs: f64,
    samples: u32,
    last_change: Option<Instant>,
    /// Since when a lower prefetch has been wanted without a break.
    lower_wanted_since: Option<Instant>,
}

impl AdaptivePrefetch {
    /// The starting prefetch for a pool of `threads`: two per thread until chunks have been measured.
    pub fn initial(threads: usize) -> u16 {
        u16::try_from(threads.saturating_mul(2)).unwrap_or(u16::MAX)
    }

    /// A controller for `threads` pool threads, currently at `current`.
    pub fn new(threads: usize, current: u16) -> Self {
        Self {
            threads: u32::try_from(threads).unwrap_or(u32::MAX).max(1),
            current,
            compute_secs: 0.0,
            overhead_secs: 0.0,
            samples: 0,
            last_change: None,
            lower_wanted_since: None,
        }
    }

    /// The prefetch in force.
    #[cfg(test)]
    pub fn current(&self) -> u16 {
        self.current
    }

    /// Records one chunk's compute time and its other slot time (status check, result confirm); returns
    /// a new prefetch to apply, if one is due.
    pub fn observe(&mut self, compute: Duration, overhead: Duration, now: Instant) -> Option<u16> {
        let (compute, overhead) = (compute.as_secs_f64(), overhead.as_secs_f64());
        if self.samples == 0 {
            (self.compute_secs, self.overhead_secs) = (compute, overhead);
        } else {
            self.compute_secs += SMOOTHING * (compute - self.compute_secs);
            self.overhead_secs += SMOOTHING * (overhead - self.overhead_secs);
        }
        self.samples += 1;
        if self.samples < WARM_UP || self.last_change.is_some_and(|at| now - at < MIN_INTERVAL) {
            return None;
        }
        let target = self.target();
        let current = f64::from(self.current);
        let higher = f64::from(target) >= current * 1.5;
        let lower = f64::from(target) <= current / 1.5;
        if !lower {
            self.lower_wanted_since = None;
        }
        if target == self.current || !(higher || lower) {
            return None;
        }
        if lower {
            let since = *self.lower_wanted_since.get_or_insert(now);
            if now - since < DECREASE_AFTER {
                return None;
            }
        }
        self.lower_wanted_since = None;
        self.current = target;
        self.last_change = Some(now);
        Some(target)
    }

    fn target(&self) -> u16 {
        let threads = f64::from(self.threads);
        let ratio = self.overhead_secs / self.compute_secs.max(1e-6);
        let wanted = threads + (threads * ratio).ceil();
        let (low, high) = (self.threads + 1, self.threads * MAX_PER_THREAD);
        let clamped = wanted.clamp(f64::from(low), f64::from(high));
        u16::try_from(clamped as u32).unwrap_or(u16::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(
        controller: &mut AdaptivePrefetch,
        compute_ms: f64,
        overhead_ms: f64,
        count: u32,
    ) -> Option<u16> {
        let start = Instant::now();
        let mut last = None;
        for i in 0..count {
            let now = start + Duration::from_secs(u64::from(i) * 2);
            let change = controller.observe(
                Duration::from_secs_f64(compute_ms / 1e3),
                Duration::from_secs_f64(overhead_ms / 1e3),
                now,
            );
            last = change.or(last);
        }
        last
    }

    #[test]
    fn tiny_chunks_get_many_slots_heavy_chunks_one_spare() {
        let mut controller = AdaptivePrefetch::new(2, AdaptivePrefetch::initial(2));
        assert_eq!(controller.current(), 4);
        assert_eq!(
            feed(&mut controller, 0.05, 2.0, 20),
            Some(64),
            "tiny chunks: capped at 32 per thread"
        );
        assert_eq!(
            feed(&mut controller, 1000.0, 2.0, 40),
            Some(3),
            "heavy chunks: threads + 1"
        );
    }

    #[test]
    fn nothing_changes_before_warm_up_or_for_small_moves() {
        let mut controller = AdaptivePrefetch::new(2, 4);
        assert_eq!(feed(&mut controller, 0.05, 2.0, WARM_UP - 1), None);
        let mut steady = AdaptivePrefetch::new(2, 4);
        // Overhead equal to compute wants 2 + 2 = 4: already there.
        assert_eq!(feed(&mut steady, 2.0, 2.0, 30), None);
    }

    #[test]
    fn a_brief_dip_does_not_shrink_the_prefetch() {
        let mut controller = AdaptivePrefetch::new(2, 4);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let observe = |c: &mut AdaptivePrefetch, compute_us: u64, ms: u64| {
            c.observe(
                Duration::from_micros(compute_us),
                Duration::from_millis(2),
                at(ms),
            )
        };
        let mut last = None;
        for i in 0..20 {
            last = observe(&mut controller, 50, 100 * i).or(last);
        }
        assert_eq!(last, Some(64));
        // Two seconds of slower chunks (wanting fewer slots), then tiny ones again: no change.
        for i in 0..20 {
            assert_eq!(observe(&mut controller, 400, 2_000 + 100 * i), None);
        }
        for i in 0..20 {
            assert_eq!(observe(&mut controller, 50, 4_000 + 100 * i), None);
        }
        assert_eq!(controller.current(), 64);
    }

    #[test]
    fn changes_are_rate_limited() {
        let mut controller = AdaptivePrefetch::new(2, 4);
        let now = Instant::now();
        let tiny = |c: &mut AdaptivePrefetch, at| {
            c.observe(Duration::from_micros(50), Duration::from_millis(2), at)
        };
        let mut changes = 0;
        for _ in 0..100 {
            changes += usize::from(tiny(&mut controller, now).is_some());
        }
        assert_eq!(changes, 1, "all at one instant: one change");
    }
}
