//! Progress reporting and cancellation shared by long operations. The library never prints:
//! it calls the caller's callback.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A point-in-time view of an operation's progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Files finished.
    pub files_done: u64,
    /// Bytes finished.
    pub bytes_done: u64,
    /// Files known in total so far (0 if unknown).
    pub total_files: u64,
    /// Bytes known in total so far (0 if unknown).
    pub total_bytes: u64,
    /// Items that could not be processed.
    pub error_count: u64,
    /// Path being worked on (one of them).
    pub current_path: String,
    /// Time since the start.
    pub elapsed: Duration,
    /// Estimated time left, when totals are known.
    pub remaining: Option<Duration>,
}

/// Receives progress about once a second and once at the end.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A handle that asks a running operation to stop. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A new, unset token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the operation to stop as soon as it safely can.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Counters an operation updates; a reporter thread turns them into [`Progress`] calls.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
    pub total_files: AtomicU64,
    pub total_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub current: Mutex<String>,
}

impl Counters {
    pub fn snapshot(&self, started: Instant) -> Progress {
        let bytes_done = self.bytes_done.load(Ordering::Relaxed);
        let total_bytes = self.total_bytes.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
        let remaining = (total_bytes > bytes_done && bytes_done > 0).then(|| {
            let rate = bytes_done as f64 / elapsed.as_secs_f64().max(1e-3);
            Duration::from_secs_f64((total_bytes - bytes_done) as f64 / rate)
        });
        Progress {
            files_done: self.files_done.load(Ordering::Relaxed),
            bytes_done,
            total_files: self.total_files.load(Ordering::Relaxed),
            total_bytes,
            error_count: self.errors.load(Ordering::Relaxed),
            current_path: self.current.lock().map(|c| c.clone()).unwrap_or_default(),
            elapsed,
            remaining,
        }
    }

    pub fn set_current(&self, path: &std::path::Path) {
        if let Ok(mut current) = self.current.try_lock() {
            current.clear();
            current.push_str(&path.to_string_lossy());
        }
    }
}

/// Calls `callback` every `interval` until dropped, then once more.
pub(crate) struct Reporter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    pub fn start(
        callback: Option<ProgressFn>,
        counters: Arc<Counters>,
        interval: Duration,
    ) -> Reporter {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = callback.map(|callback| {
            let stop = Arc::clone(&stop);
            let started = Instant::now();
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    if last.elapsed() >= interval {
                        callback(&counters.snapshot(started));
                        last = Instant::now();
                    }
                }
                callback(&counters.snapshot(started));
            })
        });
        Reporter { stop, thread }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
