//! Slots: the share of a worker one pipeline of subtasks runs in.

/// The slots of the workers a job runs on. A slot holds one subtask of each
/// vertex of a region (slot sharing), so a region needs as many slots as its
/// largest number of subtasks of one vertex.
#[derive(Debug, Clone)]
pub struct SlotPool {
    total: usize,
    free: usize,
}

impl SlotPool {
    /// A pool of `total` slots, all free.
    pub fn new(total: usize) -> Self {
        Self { total, free: total }
    }

    /// All slots.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The slots not in use.
    pub fn free(&self) -> usize {
        self.free
    }

    /// Takes `n` slots if that many are free.
    pub fn try_allocate(&mut self, n: usize) -> bool {
        if n <= self.free {
            self.free -= n;
            true
        } else {
            false
        }
    }

    /// Returns `n` slots.
    pub fn release(&mut self, n: usize) {
        self.free = (self.free + n).min(self.total);
    }
}
