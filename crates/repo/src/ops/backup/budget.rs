//! Backup's memory budget: how many files are read and chunks encoded at once.
//!
//! A backup's memory in flight is made of parts whose sizes are known in advance, so a budget
//! is a thread count, not a meter. Per worker thread (one reading files, one encoding): the
//! chunker's read block (`2 × max` chunk size) and two encode slots, each a copy of a chunk
//! and its sealed output (`2 × max`), so `6 × max`. Per pack in memory: the two being filled,
//! the one queued for upload and those uploading. Plus a baseline for the rest (the runtime,
//! the trees of the directories being walked, the set of new ids, index pages touched).
//!
//! Without a budget the thread count is the number of cores rayon sees, which on a large
//! node (a pod without a CPU limit sees every core of the host) multiplies the per-thread
//! part by dozens: a 1 GiB node-agent pod on a 64-core host would be killed. With the default
//! budget a backup uses at most as many threads as fit.

/// The default budget: half of a 1 GiB pod, leaving room for the rest of the pod and the
/// allocator's slack.
pub const DEFAULT_MEMORY_BUDGET: u64 = 512 << 20;

/// Memory set aside for everything but chunks and packs in flight.
pub const BASELINE: u64 = 96 << 20;

/// Worker threads (file readers, and as many encoders) that fit in `budget` bytes, at least
/// one and at most `cores`: `(budget − BASELINE − packs) / (6 × max_chunk)`, where `packs` is
/// `(3 + uploads) × pack_size`.
pub fn threads_within(
    budget: u64,
    cores: usize,
    max_chunk: usize,
    pack_size: usize,
    uploads: usize,
) -> usize {
    let packs = (uploads as u64)
        .saturating_add(3)
        .saturating_mul(pack_size as u64);
    let per_thread = (max_chunk as u64).saturating_mul(6);
    let spare = budget.saturating_sub(BASELINE).saturating_sub(packs);
    (spare / per_thread.max(1)).clamp(1, cores.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn default_budget_on_a_large_node_fits_a_1_gib_pod() {
        // 8 MiB chunks, 16 MiB packs, 4 uploads (a remote store), 64 cores.
        let threads = threads_within(DEFAULT_MEMORY_BUDGET, 64, 8 << 20, 16 << 20, 4);
        let used = BASELINE + 7 * 16 * MIB + threads as u64 * 48 * MIB;
        assert_eq!(threads, 6);
        assert!(used <= DEFAULT_MEMORY_BUDGET, "{used}");
    }

    #[test]
    fn never_more_than_the_cores_nor_fewer_than_one() {
        assert_eq!(threads_within(64 << 30, 2, 8 << 20, 16 << 20, 1), 2);
        assert_eq!(threads_within(0, 2, 8 << 20, 16 << 20, 1), 1);
        assert_eq!(threads_within(u64::MAX, 0, 0, usize::MAX, usize::MAX), 1);
    }

    proptest::proptest! {
        #[test]
        fn what_the_threads_hold_fits_whenever_more_than_one_is_granted(
            budget in 0u64..(8 << 30),
            cores in 1usize..256,
            max_chunk in (64usize << 10)..(16 << 20),
            pack_size in (1usize << 20)..(128 << 20),
            uploads in 1usize..16,
        ) {
            let threads = threads_within(budget, cores, max_chunk, pack_size, uploads);
            proptest::prop_assert!((1..=cores).contains(&threads));
            if threads > 1 {
                let used = BASELINE
                    + (3 + uploads as u64) * pack_size as u64
                    + threads as u64 * 6 * max_chunk as u64;
                proptest::prop_assert!(used <= budget);
            }
        }
    }
}
