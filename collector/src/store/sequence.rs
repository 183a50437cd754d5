//! Which batch numbers of one instance were applied: makes ingest idempotent and counts gaps.

use std::collections::BTreeSet;

/// Most sequence numbers remembered above the contiguous prefix. Beyond it the oldest gap is
/// given up as lost for good (a filter's retry buffer is far smaller), which keeps memory bounded
/// per instance.
pub(crate) const MAX_OUT_OF_ORDER: usize = 1024;

/// Applied sequence numbers: all of `1..=contiguous`, plus `above` (all > `contiguous + 1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SequenceWindow {
    contiguous: u64,
    above: BTreeSet<u64>,
    /// Sequences abandoned as lost when `above` overflowed.
    abandoned: u64,
}

impl SequenceWindow {
    /// Records `sequence` as applied; false when it already was (or was given up long ago).
    pub(crate) fn insert(&mut self, sequence: u64) -> bool {
        if sequence <= self.contiguous || self.above.contains(&sequence) {
            return false;
        }
        if sequence == self.contiguous + 1 {
            self.contiguous = sequence;
            self.absorb();
        } else {
            self.above.insert(sequence);
            if self.above.len() > MAX_OUT_OF_ORDER {
                self.abandon_oldest_gap();
            }
        }
        true
    }

    /// Highest sequence applied, 0 before any.
    pub(crate) fn highest(&self) -> u64 {
        self.above.last().copied().unwrap_or(self.contiguous)
    }

    /// Sequence numbers below the highest that have not arrived (including abandoned ones).
    pub(crate) fn missing(&self) -> u64 {
        let open = self.highest() - self.contiguous - self.above.len() as u64;
        open + self.abandoned
    }

    /// The window as stored on disk: the contiguous prefix, the sequences above it, and the
    /// count abandoned.
    pub(crate) fn parts(&self) -> (u64, impl Iterator<Item = u64> + '_, u64) {
        (self.contiguous, self.above.iter().copied(), self.abandoned)
    }

    /// A window read back from [`SequenceWindow::parts`]; sequences at or below `contiguous`
    /// in `above` are ignored, a gap-free start of `above` is absorbed.
    pub(crate) fn from_parts(
        contiguous: u64,
        above: impl IntoIterator<Item = u64>,
        abandoned: u64,
    ) -> Self {
        let mut window = Self {
            contiguous,
            above: above.into_iter().filter(|&s| s > contiguous).collect(),
            abandoned,
        };
        window.absorb();
        window
    }

    fn absorb(&mut self) {
        while self.above.first() == Some(&(self.contiguous + 1)) {
            self.above.pop_first();
            self.contiguous += 1;
        }
    }

    fn abandon_oldest_gap(&mut self) {
        if let Some(first) = self.above.pop_first() {
            self.abandoned += first - self.contiguous - 1;
            self.contiguous = first;
            self.absorb();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_has_no_gaps() {
        let mut window = SequenceWindow::default();
        for sequence in 1..=5 {
            assert!(window.insert(sequence));
        }
        assert_eq!(window.highest(), 5);
        assert_eq!(window.missing(), 0);
        assert!(!window.insert(3));
        assert!(!window.insert(5));
    }

    #[test]
    fn gap_is_counted_and_late_arrival_fills_it() {
        let mut window = SequenceWindow::default();
        assert!(window.insert(1));
        assert!(window.insert(4));
        assert_eq!(window.missing(), 2);
        assert!(window.insert(3));
        assert_eq!(window.missing(), 1);
        assert!(!window.insert(4));
        assert!(window.insert(2));
        assert_eq!(window.missing(), 0);
        assert_eq!(window.highest(), 4);
        assert!(window.above.is_empty());
    }

    #[test]
    fn parts_round_trip() {
        let mut window = SequenceWindow::default();
        for sequence in [1, 2, 5, 7, 8] {
            window.insert(sequence);
        }
        let (contiguous, above, abandoned) = window.parts();
        let above: Vec<u64> = above.collect();
        assert_eq!(
            (contiguous, above.as_slice(), abandoned),
            (2, &[5, 7, 8][..], 0)
        );
        assert_eq!(
            SequenceWindow::from_parts(contiguous, above, abandoned),
            window
        );
    }

    #[test]
    fn first_batch_lost() {
        let mut window = SequenceWindow::default();
        assert!(window.insert(3));
        assert_eq!(window.missing(), 2);
    }

    #[test]
    fn memory_stays_bounded_and_lost_gaps_stay_counted() {
        let mut window = SequenceWindow::default();
        assert!(window.insert(1));
        // Sequence 2 never arrives; 3.. keep coming.
        let last = 3 + MAX_OUT_OF_ORDER as u64 + 10;
        for sequence in 3..=last {
            assert!(window.insert(sequence));
            assert!(window.above.len() <= MAX_OUT_OF_ORDER);
        }
        assert_eq!(window.missing(), 1);
        assert_eq!(window.highest(), last);
        assert!(window.above.is_empty());
    }
}
