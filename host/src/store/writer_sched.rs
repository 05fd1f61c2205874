//! The log writer's scheduling class, shared with the request path.
//!
//! The writer runs at `SCHED_IDLE` while it keeps up, so a batch never delays a request
//! on a shared core (at one connection this took the gateway's p99 from 3.3 ms to
//! 0.33 ms), and at its nice value while it is behind, so a saturated core cannot starve
//! the log. An idle-class thread on a saturated core may not run for hundreds of
//! milliseconds, so it cannot be the one to notice it is behind: by then its queue has
//! filled and rows wait in the usage journal, where each costs a JSON decode more to
//! write (about 5 µs a request at c=64 without plugins). So the sender that finds the
//! queue nearly full lifts the writer itself, by thread id; not sooner, because on a
//! busy but not saturated core the writer's work fits in the core's idle moments.
//! Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` (or root, or an `RLIMIT_NICE` that allows
//! the writer's nice value): without it the writer stays at its nice value throughout.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The writer thread's nice value while it is not idle-class.
const WRITER_NICE: i32 = 5;

/// Where the writer is: idle-class or at its nice value, and who may move it.
#[derive(Debug)]
pub(super) struct WriterSched {
    /// Whether both switches work here (probed once, on a scratch thread: a thread that
    /// enters `SCHED_IDLE` without the right to leave it stays there).
    dynamic: AtomicBool,
    /// The writer's thread id while it runs; 0 before and after, so that a sender never
    /// moves a thread that reused an exited writer's id.
    tid: AtomicI32,
    /// Whether the writer is idle-class now (a hint read without the lock).
    idle: AtomicBool,
    /// Held across a switch and while the id changes, so the writer and a sender never
    /// cross.
    switching: Mutex<()>,
    /// Queued rows past which a sender lifts an idle-class writer.
    lift_at: u64,
}

/// The writer thread's registration; dropping it (the writer returning or unwinding)
/// withdraws the thread id.
pub(super) struct OnWriter<'a>(&'a WriterSched);

impl Drop for OnWriter<'_> {
    fn drop(&mut self) {
        let _g = crate::sync::lock(&self.0.switching);
        self.0.tid.store(0, Ordering::Release);
    }
}

impl WriterSched {
    /// A writer not yet started, to be lifted by senders past `lift_at` queued rows.
    pub(super) fn new(lift_at: u64) -> Self {
        Self {
            dynamic: AtomicBool::new(false),
            tid: AtomicI32::new(0),
            idle: AtomicBool::new(false),
            switching: Mutex::new(()),
            lift_at,
        }
    }

    /// Called on the writer thread as it starts: sets its nice value, probes whether it
    /// may switch class and records its id until the returned guard is dropped.
    pub(super) fn start_on_writer(&self) -> OnWriter<'_> {
        let _ = rustix::process::setpriority_process(None, WRITER_NICE);
        let dynamic = std::thread::Builder::new()
            .name("sched-probe".into())
            .spawn(|| set_class(0, Class::Idle) && set_class(0, Class::Normal))
            .ok()
            .and_then(|t| t.join().ok())
            .unwrap_or(false);
        let _g = crate::sync::lock(&self.switching);
        self.dynamic.store(dynamic, Ordering::Release);
        self.tid.store(
            rustix::thread::gettid().as_raw_nonzero().get(),
            Ordering::Release,
        );
        OnWriter(self)
    }

    /// The writer's own call after each gather: idle-class unless `behind`.
    pub(super) fn keep_up(&self, behind: bool) {
        if !self.dynamic.load(Ordering::Acquire) || self.idle.load(Ordering::Acquire) != behind {
            return;
        }
        let _g = crate::sync::lock(&self.switching);
        if self.idle.load(Ordering::Acquire) != behind {
            return;
        }
        let class = if behind { Class::Normal } else { Class::Idle };
        if set_class(0, class) {
            self.idle.store(!behind, Ordering::Release);
        } else {
            // Refused once, refused for good: stay at the nice value, and senders stop
            // trying.
            self.dynamic.store(false, Ordering::Release);
            if set_class(0, Class::Normal) {
                self.idle.store(false, Ordering::Release);
            }
        }
    }

    /// A sender's call after queueing a row, with the rows now queued: lifts an
    /// idle-class writer out of `SCHED_IDLE` once `queued` passes the mark. Below the
    /// mark it costs a comparison; past it, two atomic loads unless it switches (one
    /// system call, once per backlog).
    pub(super) fn after_queue(&self, queued: u64) {
        if queued > self.lift_at {
            self.lift();
        }
    }

    /// Lifts an idle-class writer to its nice value, from any thread; never waits (the
    /// next row past the mark tries again).
    pub(super) fn lift(&self) {
        if !self.dynamic.load(Ordering::Acquire) || !self.idle.load(Ordering::Acquire) {
            return;
        }
        let Ok(_g) = self.switching.try_lock() else {
            return;
        };
        let tid = self.tid.load(Ordering::Acquire);
        if tid != 0 && self.idle.load(Ordering::Acquire) && set_class(tid, Class::Normal) {
            self.idle.store(false, Ordering::Release);
        }
    }

    /// Whether the writer is idle-class now.
    #[cfg(test)]
    fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Acquire)
    }

    /// Whether the writer may switch class here.
    #[cfg(test)]
    fn is_dynamic(&self) -> bool {
        self.dynamic.load(Ordering::Acquire)
    }
}

#[derive(Clone, Copy)]
enum Class {
    Idle,
    Normal,
}

/// Puts thread `tid` (0: the calling thread) in `class`; the kernel keeps its nice
/// value. False if the kernel refused.
fn set_class(tid: i32, class: Class) -> bool {
    let policy = match class {
        Class::Idle => libc::SCHED_IDLE,
        Class::Normal => libc::SCHED_OTHER,
    };
    sched_setscheduler(tid, policy)
}

/// `sched_setscheduler(2)` with static priority 0, the only one these classes take.
/// On Linux it acts on one thread. Neither rustix nor thread-priority offers it for a
/// thread other than the caller (thread-priority re-nices the calling thread whichever
/// thread it is given).
#[allow(unsafe_code)]
fn sched_setscheduler(tid: i32, policy: libc::c_int) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, initialised `sched_param` that outlives the call,
    // which only reads it; an unknown `tid` is an error return, not undefined behaviour.
    // (That `tid` names the writer is the callers' part: `OnWriter` withdraws it before
    // the thread exits.)
    unsafe { libc::sched_setscheduler(tid, policy, &param) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// The kernel's record of a thread's class.
    fn policy_of(tid: i32) -> i32 {
        #[allow(unsafe_code)]
        // SAFETY: a plain query of a thread's policy; no memory is passed.
        unsafe {
            libc::sched_getscheduler(tid)
        }
    }

    fn nice_of(tid: i32) -> i32 {
        let pid = rustix::process::Pid::from_raw(tid);
        rustix::process::getpriority_process(pid).unwrap_or(i32::MIN)
    }

    /// A writer stand-in on its own thread that runs `keep_up(behind)` on command.
    struct Writer {
        cmd: mpsc::Sender<Option<bool>>,
        done: mpsc::Receiver<()>,
        thread: std::thread::JoinHandle<()>,
    }

    impl Writer {
        fn start(sched: std::sync::Arc<WriterSched>) -> Self {
            let (cmd, cmd_rx) = mpsc::channel::<Option<bool>>();
            let (done_tx, done) = mpsc::channel();
            let thread = std::thread::spawn(move || {
                let _on = sched.start_on_writer();
                done_tx.send(()).unwrap();
                while let Ok(Some(behind)) = cmd_rx.recv() {
                    sched.keep_up(behind);
                    done_tx.send(()).unwrap();
                }
                // Leave as an ordinary thread, whatever the test did.
                sched.keep_up(true);
            });
            done.recv().unwrap();
            Self { cmd, done, thread }
        }

        fn keep_up(&self, behind: bool) {
            self.cmd.send(Some(behind)).unwrap();
            self.done.recv().unwrap();
        }

        fn stop(self) {
            self.cmd.send(None).unwrap();
            self.thread.join().unwrap();
        }
    }

    #[test]
    fn a_sender_lifts_an_idle_writer_past_the_mark_and_not_before() {
        let sched = std::sync::Arc::new(WriterSched::new(4));
        let writer = Writer::start(sched.clone());
        let tid = sched.tid.load(Ordering::Acquire);
        assert_ne!(tid, 0);
        if !sched.is_dynamic() {
            // Without the right to leave `SCHED_IDLE` the writer never enters it, and
            // senders leave it alone.
            writer.keep_up(false);
            assert!(!sched.is_idle());
            assert_eq!(policy_of(tid), libc::SCHED_OTHER);
            sched.after_queue(u64::MAX);
            sched.lift();
            assert_eq!(policy_of(tid), libc::SCHED_OTHER);
            writer.stop();
            return;
        }
        writer.keep_up(false);
        assert!(sched.is_idle());
        assert_eq!(policy_of(tid), libc::SCHED_IDLE);
        sched.after_queue(4);
        assert_eq!(policy_of(tid), libc::SCHED_IDLE, "lifted at the mark");
        sched.after_queue(5);
        assert!(!sched.is_idle());
        assert_eq!(
            policy_of(tid),
            libc::SCHED_OTHER,
            "not lifted past the mark"
        );
        assert_eq!(nice_of(tid), WRITER_NICE, "the lift kept the nice value");
        // Caught up, the writer goes idle-class again; a row that finds the queue full
        // lifts it whatever the count.
        writer.keep_up(false);
        assert_eq!(policy_of(tid), libc::SCHED_IDLE);
        sched.lift();
        assert_eq!(policy_of(tid), libc::SCHED_OTHER);
        writer.stop();
        assert_eq!(sched.tid.load(Ordering::Acquire), 0, "id withdrawn at exit");
    }

    #[test]
    fn the_writer_switches_itself_with_its_backlog() {
        let sched = std::sync::Arc::new(WriterSched::new(4));
        let writer = Writer::start(sched.clone());
        let tid = sched.tid.load(Ordering::Acquire);
        if !sched.is_dynamic() {
            writer.keep_up(false);
            assert_eq!(policy_of(tid), libc::SCHED_OTHER);
            writer.stop();
            return;
        }
        writer.keep_up(false);
        assert_eq!(policy_of(tid), libc::SCHED_IDLE);
        writer.keep_up(true);
        assert_eq!(policy_of(tid), libc::SCHED_OTHER);
        assert!(!sched.is_idle());
        assert_eq!(nice_of(tid), WRITER_NICE);
        writer.keep_up(false);
        assert_eq!(policy_of(tid), libc::SCHED_IDLE);
        writer.stop();
    }
}
