//! The epoch ticker: advances the engine's epoch every millisecond while plugin code
//! may be running, so deadlines fire and busy plugins yield, and sleeps otherwise.
//!
//! A ticker that never stopped woke its core a thousand times a second even with no
//! plugin to watch: 2.8% of a core for an idle gateway on the CI machine, and the
//! same on every request path of a tenant without plugins.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;
use wasmtime::Engine;

/// How often the epoch advances; deadlines are counted in these ticks.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Ticks with nothing running before the ticker sleeps.
const IDLE_TICKS: u32 = 100;

/// How long a sleeping ticker waits before checking whether its engine is gone.
const ASLEEP_CHECK: Duration = Duration::from_secs(1);

/// What the ticker and the calls share.
#[derive(Default)]
struct Shared {
    /// Calls that may be running plugin code now.
    running: AtomicUsize,
    /// The ticker is asleep (or about to be): a call starting must wake it.
    asleep: AtomicBool,
    thread: OnceLock<Thread>,
    /// Epochs advanced, for tests: an idle ticker advances none.
    ticks: AtomicU64,
}

/// The handle calls take the ticker's attention through.
#[derive(Clone, Default)]
pub(super) struct Ticker(Arc<Shared>);

/// Keeps the ticker awake while a call runs plugin code.
pub(super) struct Running(Arc<Shared>);

impl Ticker {
    /// Starts the ticker thread for `engine`; it stops once the engine is dropped.
    pub(super) fn start(engine: &Engine) -> Self {
        let ticker = Self::default();
        let shared = ticker.0.clone();
        let weak = engine.weak();
        let spawned = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                let mut idle = 0u32;
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => return,
                    }
                    shared.ticks.fetch_add(1, Ordering::Relaxed);
                    if shared.running.load(Ordering::SeqCst) > 0 {
                        idle = 0;
                        continue;
                    }
                    idle += 1;
                    if idle < IDLE_TICKS {
                        continue;
                    }
                    // With `running` read after `asleep` is set (and a call reading
                    // `asleep` after raising `running`), either this thread sees the
                    // call or the call sees this thread asleep and wakes it. Waking
                    // only to see whether the engine is gone, it sleeps again at once:
                    // ticking its idle ticks after each check cost 100 wake-ups a second.
                    shared.asleep.store(true, Ordering::SeqCst);
                    while shared.running.load(Ordering::SeqCst) == 0 {
                        std::thread::park_timeout(ASLEEP_CHECK);
                        if weak.upgrade().is_none() {
                            return;
                        }
                    }
                    shared.asleep.store(false, Ordering::SeqCst);
                    idle = 0;
                }
            });
        match spawned {
            Ok(handle) => {
                let _ = ticker.0.thread.set(handle.thread().clone());
            }
            Err(e) => {
                tracing::error!(error = %e, "could not start the epoch ticker: plugin deadlines will not fire");
            }
        }
        ticker
    }

    /// Marks a call as running plugin code until the guard drops, waking the ticker
    /// if it sleeps.
    pub(super) fn running(&self) -> Running {
        self.0.running.fetch_add(1, Ordering::SeqCst);
        if self.0.asleep.load(Ordering::SeqCst)
            && let Some(t) = self.0.thread.get()
        {
            t.unpark();
        }
        Running(self.0.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module exporting `f`, which does nothing (wasmtime checks the epoch on entry).
    const NOTHING: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type 0: [] -> []
        0x03, 0x02, 0x01, 0x00, // func 0: type 0
        0x07, 0x05, 0x01, 0x01, b'f', 0x00, 0x00, // export "f" = func 0
        0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // body: no locals, end
    ];

    /// Whether the epoch passes a deadline one tick ahead within `within`.
    fn epoch_moves(engine: &Engine, within: Duration) -> bool {
        let module = wasmtime::Module::new(engine, NOTHING).expect("module");
        let mut store = wasmtime::Store::new(engine, ());
        store.set_epoch_deadline(1);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).expect("instance");
        let f = instance
            .get_typed_func::<(), ()>(&mut store, "f")
            .expect("f");
        let start = std::time::Instant::now();
        while start.elapsed() < within {
            if f.call(&mut store, ()).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }

    #[test]
    fn the_ticker_sleeps_when_idle_and_a_call_wakes_it() {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).expect("engine");
        let ticker = Ticker::start(&engine);
        // Idle: it goes to sleep after its idle ticks.
        let start = std::time::Instant::now();
        while !ticker.0.asleep.load(Ordering::SeqCst) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the ticker never slept"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Asleep, it stays asleep past its check for the engine (no idle ticks
        // after each check).
        let ticks = ticker.0.ticks.load(Ordering::Relaxed);
        std::thread::sleep(ASLEEP_CHECK * 2 + Duration::from_millis(200));
        assert_eq!(
            ticker.0.ticks.load(Ordering::Relaxed),
            ticks,
            "an idle ticker woke to tick"
        );
        let running = ticker.running();
        assert!(
            epoch_moves(&engine, Duration::from_secs(10)),
            "a running call must see the epoch advance"
        );
        drop(running);
        assert_eq!(ticker.0.running.load(Ordering::SeqCst), 0);
    }
}
