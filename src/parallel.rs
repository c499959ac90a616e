//! The build's other cores: a pool of build threads (rayon), one per core the process may use, for
//! batches of independent items large enough to pay for handing them over — the first build, a
//! relist, a Service that many Ingresses use, the full rebuild (the reference path, which
//! `isobar check` and `isobar diff` run), and a long manifest file's documents (hashed and parsed).
//! A batch smaller than [`MIN_BATCH`] (a change to one object, the common case) runs on the calling
//! thread, as does everything when the process may use one core. What runs here computes values
//! only; the memos are updated on the calling thread, in the order the sequential build used.

use std::sync::OnceLock;

use rayon::prelude::*;

/// The fewest items a batch spreads over the pool with; below it the hand-over costs more than it saves.
pub const MIN_BATCH: usize = 256;

/// At most this many build threads, however many cores there are: the batches are a few thousand
/// items, not enough to keep many more busy.
const MAX_THREADS: usize = 8;

/// The build threads, started on first use; `None` with a single core (or if none could start).
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        // The cores the process may use: its CPU affinity and its cgroup's CPU quota (a pod's limit:
        // `deploy/`'s two CPUs start two build threads; a limit of one starts no pool, as more
        // threads would only be throttled).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores < 2 {
            return None;
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores.min(MAX_THREADS))
            .thread_name(|i| format!("isobar-build-{i}"))
            .build()
            .map_err(|e| tracing::warn!(error = %e, "no build threads; building on one core"))
            .ok()
    })
    .as_ref()
}

/// A batch [`map`] takes: a slice or vector by reference (the function gets `&T`) or a vector by
/// value (it gets each `T`, to move into its result).
pub trait Batch:
    Send + IntoParallelIterator + IntoIterator<Item = <Self as IntoParallelIterator>::Item>
{
    /// How many items the batch has, before it is taken apart.
    fn count(&self) -> usize;
}

impl<'a, T: Sync + 'a> Batch for &'a [T] {
    fn count(&self) -> usize {
        self.len()
    }
}

impl<'a, T: Sync + 'a> Batch for &'a Vec<T> {
    fn count(&self) -> usize {
        self.len()
    }
}

impl<T: Send> Batch for Vec<T> {
    fn count(&self) -> usize {
        self.len()
    }
}

/// `f` of every item, in the items' order: on the build threads for a batch of at least
/// [`MIN_BATCH`], on the calling thread otherwise.
pub fn map<B: Batch, R: Send>(
    items: B,
    f: impl Fn(<B as IntoIterator>::Item) -> R + Sync + Send,
) -> Vec<R> {
    match pool() {
        Some(pool) if items.count() >= MIN_BATCH => {
            pool.install(|| items.into_par_iter().map(f).collect())
        }
        _ => items.into_iter().map(f).collect(),
    }
}

/// `a()` and `b()`: on two build threads for a pair of independent parts of one build (a whole
/// translation's routes and its clusters) whose larger part has at least [`MIN_BATCH`] `items`, one
/// after the other on the calling thread otherwise. Either part may [`map`] on the same pool.
pub fn join<A: Send, B: Send>(
    items: usize,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    match pool() {
        Some(pool) if items >= MIN_BATCH => pool.install(|| rayon::join(a, b)),
        _ => (a(), b()),
    }
}

/// `f` of every item, in the items' order, each item a task of its own: on the build threads when
/// the items carry at least [`MIN_BATCH`] units of `work` between them (a few large items, such as
/// the cache's map of each resource type), on the calling thread otherwise.
pub fn map_each<T: Send, R: Send>(
    items: Vec<T>,
    work: usize,
    f: impl Fn(T) -> R + Sync + Send,
) -> Vec<R> {
    match pool() {
        Some(pool) if work >= MIN_BATCH => {
            pool.install(|| items.into_par_iter().with_max_len(1).map(f).collect())
        }
        _ => items.into_iter().map(f).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The item doubled, and the name of the thread that doubled it.
    fn doubled_where(i: usize) -> (usize, Option<String>) {
        (i * 2, std::thread::current().name().map(str::to_string))
    }

    #[rstest::rstest]
    fn a_large_batch_keeps_the_items_order_and_runs_on_the_build_threads(
        #[values(false, true)] owned: bool,
    ) {
        let items: Vec<usize> = (0..MIN_BATCH * 4).collect();
        let out = if owned {
            map(items.clone(), doubled_where)
        } else {
            map(&items, |i| doubled_where(*i))
        };
        assert_eq!(
            out.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
        let on_pool = out
            .iter()
            .filter(|(_, n)| n.as_deref().is_some_and(|n| n.starts_with("isobar-build-")))
            .count();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores >= 2 {
            assert_eq!(
                on_pool,
                items.len(),
                "every item of a large batch on a build thread"
            );
        } else {
            assert_eq!(on_pool, 0, "one core: no build threads");
        }
    }

    #[test]
    fn a_small_batch_runs_on_the_calling_thread() {
        let caller = std::thread::current().id();
        let items: Vec<usize> = (0..MIN_BATCH - 1).collect();
        let threads = map(&items, |_| std::thread::current().id());
        assert!(threads.iter().all(|t| *t == caller));
        let threads = map(items, |_| std::thread::current().id());
        assert!(threads.iter().all(|t| *t == caller));
        let (a, b) = join(
            MIN_BATCH - 1,
            || std::thread::current().id(),
            || std::thread::current().id(),
        );
        assert_eq!(
            (a, b),
            (caller, caller),
            "a small pair on the calling thread"
        );
    }

    #[test]
    fn a_few_items_of_much_work_run_each_on_the_build_threads_in_order() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let on_pool =
            |n: &Option<String>| n.as_deref().is_some_and(|n| n.starts_with("isobar-build-"));
        let heavy = map_each(vec![1, 2, 3], MIN_BATCH, doubled_where);
        assert_eq!(
            heavy.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            [2, 4, 6],
            "each item's own result, in order"
        );
        assert!(
            heavy.iter().all(|(_, n)| on_pool(n) == (cores >= 2)),
            "on build threads when there are any: {heavy:?}"
        );
        let light = map_each(vec![1, 2, 3], MIN_BATCH - 1, doubled_where);
        let caller = std::thread::current().name().map(str::to_string);
        assert!(
            light.iter().all(|(_, n)| *n == caller),
            "little work on the calling thread: {light:?}"
        );
    }

    #[test]
    fn a_large_pair_runs_both_parts_on_the_build_threads() {
        let (a, b) = join(MIN_BATCH, || doubled_where(1), || doubled_where(2));
        assert_eq!((a.0, b.0), (2, 4), "each part's own result, in order");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let on_pool =
            |n: &Option<String>| n.as_deref().is_some_and(|n| n.starts_with("isobar-build-"));
        assert_eq!(
            (on_pool(&a.1), on_pool(&b.1)),
            (cores >= 2, cores >= 2),
            "both parts on build threads when there are any"
        );
    }
}
