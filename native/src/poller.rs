//! One reader thread for every FIFO: `FifoPoller`.
//!
//! A trio task per FIFO wakes once per burst a container writes: with 50
//! containers writing 10 lines every 100 ms that is 500 wake-ups a second, each
//! costing more than decoding its lines. Here one OS thread waits on every FIFO
//! with epoll, reads what is ready into a bounded buffer per FIFO, and then
//! sleeps up to `interval` before it looks again, so that the FIFOs fill meanwhile;
//! trio wakes once per round (on an eventfd) and takes every FIFO's bytes in one
//! call. The pause is shortened so that the fastest FIFO of the last round
//! would bring at most `fill` bytes (a quarter of a 1 MiB pipe), and while a
//! FIFO is being written flat out (a round read `fill` or more within the last
//! interval) it is 1 ms, as the per-FIFO reader used to pause: a busy container
//! is read as fast as before.
//!
//! Backpressure stays per FIFO: a FIFO whose buffer is full, or that Python has
//! paused (a `block` sink is full), is taken out of the epoll set, so its pipe
//! fills and only its container's writes block. All buffers together hold at most
//! `max_total` bytes (a fixed memory cost, however many containers write at once):
//! past it no FIFO is read until trio takes the round, and the FIFOs left out then
//! are read first in the next one. The thread never holds the GIL
//! and never closes a descriptor: Python owns them, and `remove` guarantees the
//! thread will not touch one again once it returns.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::exceptions::{PyKeyError, PyOSError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

const READ_CHUNK: usize = 256 << 10;
const WAKE_KEY: u64 = u64::MAX;
/// The pause while some FIFO is busy: what the per-FIFO reader used to wait (1-2 ms).
const BUSY_PAUSE: Duration = Duration::from_millis(1);

struct Slot {
    fd: RawFd,
    pending: Vec<u8>,
    eof: bool,
    errno: i32,
    paused: bool,
    armed: bool,
    /// StopLogging came: EOF follows, and is wanted without the pause.
    ending: bool,
}

struct State {
    slots: HashMap<u64, Slot>,
    /// Keys with pending bytes, EOF or an error, in the order they became ready.
    ready: Vec<u64>,
    signalled: bool,
    stopping: bool,
    /// Slots marked `ending` and not removed yet: while any, rounds pause 1 ms at most.
    ending: usize,
    /// Bytes in every slot's buffer together (at most `max_total`).
    total: usize,
    /// Keys taken out of the epoll set because `total` was reached: re-armed by `take`.
    starved: Vec<u64>,
}

struct Shared {
    state: Mutex<State>,
    epoll: RawFd,
    /// Readable when `take` has something: trio waits on it.
    ready_fd: RawFd,
    /// Written to wake the thread (stop, or a FIFO to re-arm right away).
    control_fd: RawFd,
    max_pending: usize,
    max_total: usize,
    interval: Duration,
    fill: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Watch (`on`) or stop watching the slot's fd. Stopping removes it from the epoll set:
    /// epoll reports a hang-up even for an fd that asks for no events, and a paused or
    /// finished FIFO whose writer is gone would wake the thread every round.
    fn arm(&self, key: u64, slot: &mut Slot, on: bool) {
        if slot.armed == on {
            return;
        }
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: key,
        };
        let op = if on {
            libc::EPOLL_CTL_ADD
        } else {
            libc::EPOLL_CTL_DEL
        };
        // SAFETY: epoll and slot.fd are open descriptors; event is a valid epoll_event.
        unsafe { libc::epoll_ctl(self.epoll, op, slot.fd, &mut event) };
        slot.armed = on;
    }

    fn signal(&self, state: &mut State) {
        if !state.signalled {
            state.signalled = true;
            let one: u64 = 1;
            // SAFETY: ready_fd is an eventfd; writing 8 bytes is its protocol.
            unsafe { libc::write(self.ready_fd, &one as *const u64 as *const libc::c_void, 8) };
        }
    }

    /// Read what `key`'s FIFO holds into its buffer, within the per-slot and the total
    /// bounds (`all`: bytes in every buffer); returns the bytes read.
    fn read_slot(
        &self,
        key: u64,
        slot: &mut Slot,
        all: &mut usize,
        starved: &mut Vec<u64>,
    ) -> usize {
        let mut total = 0;
        while slot.pending.len() < self.max_pending {
            if *all >= self.max_total {
                self.arm(key, slot, false);
                starved.push(key);
                return total;
            }
            let want = READ_CHUNK
                .min(self.max_pending - slot.pending.len())
                .min(self.max_total - *all)
                .max(1);
            slot.pending.reserve(want);
            let spare = slot.pending.spare_capacity_mut();
            // SAFETY: reading at most spare.len() bytes into the Vec's own spare capacity.
            let n = unsafe { libc::read(slot.fd, spare.as_mut_ptr() as *mut libc::c_void, want) };
            if n > 0 {
                // SAFETY: the kernel initialised n bytes.
                unsafe { slot.pending.set_len(slot.pending.len() + n as usize) };
                total += n as usize;
                *all += n as usize;
                if (n as usize) < want {
                    break; // a pipe read short of the request emptied the pipe: spare the EAGAIN read
                }
                continue;
            }
            if n == 0 {
                slot.eof = true;
            } else {
                let errno = std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO);
                if errno == libc::EINTR {
                    continue;
                }
                if errno != libc::EAGAIN {
                    slot.errno = errno;
                }
            }
            break;
        }
        if slot.eof || slot.errno != 0 || slot.pending.len() >= self.max_pending {
            self.arm(key, slot, false);
        }
        total
    }

    /// What `slot` holds, handed out now rather than by `take` (re-armed unless paused).
    fn hand_out<'py>(
        &self,
        py: Python<'py>,
        key: u64,
        slot: &mut Slot,
        total: &mut usize,
        ready: &mut Vec<u64>,
    ) -> (Bound<'py, PyBytes>, bool, i32) {
        let data = PyBytes::new(py, &slot.pending);
        *total -= slot.pending.len();
        slot.pending.clear();
        let (eof, errno) = (slot.eof, slot.errno);
        if !eof && errno == 0 && !slot.paused {
            self.arm(key, slot, true);
        }
        ready.retain(|k| *k != key);
        (data, eof, errno)
    }

    /// Sleep, unless `hurry` (a write to the control eventfd) cuts it short.
    fn pause(&self, pause: Duration) {
        let mut control = libc::pollfd {
            fd: self.control_fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = pause.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut control, 1, ms) } > 0 {
            let mut value: u64 = 0;
            // SAFETY: control_fd is a non-blocking eventfd; reading resets it.
            unsafe {
                libc::read(
                    self.control_fd,
                    &mut value as *mut u64 as *mut libc::c_void,
                    8,
                )
            };
        }
    }

    fn run(&self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut wait_ms: i32 = -1;
        let mut last_round = std::time::Instant::now();
        let mut busy_until = last_round;
        loop {
            if self.lock().stopping {
                return; // (a stop during the pause was consumed by it)
            }
            // SAFETY: events has room for its length in epoll_events.
            let count = unsafe {
                libc::epoll_wait(
                    self.epoll,
                    events.as_mut_ptr(),
                    events.len() as i32,
                    wait_ms,
                )
            };
            let count = if count < 0 { 0 } else { count as usize };
            let mut state = self.lock();
            if state.stopping {
                return;
            }
            let mut busiest = 0;
            for event in &events[..count] {
                let key = event.u64;
                if key == WAKE_KEY {
                    let mut value: u64 = 0;
                    // SAFETY: control_fd is a non-blocking eventfd.
                    unsafe {
                        libc::read(
                            self.control_fd,
                            &mut value as *mut u64 as *mut libc::c_void,
                            8,
                        )
                    };
                    continue;
                }
                let State {
                    slots,
                    ready,
                    total,
                    starved,
                    ..
                } = &mut *state;
                let Some(slot) = slots.get_mut(&key) else {
                    continue;
                };
                if slot.paused {
                    self.arm(key, slot, false);
                    continue;
                }
                let had = !slot.pending.is_empty() || slot.eof || slot.errno != 0;
                busiest = busiest.max(self.read_slot(key, slot, total, starved));
                let has = !slot.pending.is_empty() || slot.eof || slot.errno != 0;
                if has && !had {
                    ready.push(key);
                }
            }
            if !state.ready.is_empty() {
                self.signal(&mut state);
            }
            let ending = state.ending > 0;
            drop(state);
            // Let the FIFOs fill before the next round, unless one is arriving faster than that.
            wait_ms = -1;
            if count > 0 {
                // Let the FIFOs fill before the next round, no longer than the fastest one takes
                // to bring `fill` bytes at the rate it just had.
                let now = std::time::Instant::now();
                let elapsed = now.duration_since(last_round).as_secs_f64().max(1e-4);
                last_round = now;
                if busiest >= self.fill {
                    busy_until = now + self.interval;
                }
                let pause = if busiest >= self.fill {
                    // A pipe this full may have held its writer up already: read again at once.
                    Duration::ZERO
                } else if ending || now < busy_until {
                    // A container is ending, or one was writing flat out within the interval:
                    // short pauses, so that its pipe never fills.
                    self.interval.min(BUSY_PAUSE)
                } else if busiest == 0 {
                    self.interval
                } else {
                    let rate = busiest as f64 / elapsed;
                    self.interval
                        .min(Duration::from_secs_f64(self.fill as f64 / rate))
                };
                if pause >= Duration::from_micros(200) {
                    self.pause(pause);
                }
            }
            if count == events.len() {
                wait_ms = 0;
            }
        }
    }
}

/// Reads many FIFOs on one thread; trio takes what they brought, a round at a time.
#[pyclass(module = "logdriver._native")]
pub struct FifoPoller {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn os_error() -> PyErr {
    PyOSError::new_err(std::io::Error::last_os_error().to_string())
}

#[pymethods]
impl FifoPoller {
    /// `interval`: seconds to let FIFOs fill between rounds; `max_pending`: bytes kept
    /// per FIFO until taken, `max_total` for all of them; `fill`: the most one FIFO
    /// should bring during a pause.
    #[new]
    fn new(interval: f64, max_pending: usize, max_total: usize, fill: usize) -> PyResult<Self> {
        // SAFETY: plain syscalls creating descriptors this object owns.
        let (epoll, ready_fd, control_fd) = unsafe {
            (
                libc::epoll_create1(libc::EPOLL_CLOEXEC),
                libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK),
                libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK),
            )
        };
        if epoll < 0 || ready_fd < 0 || control_fd < 0 {
            return Err(os_error());
        }
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: WAKE_KEY,
        };
        // SAFETY: both descriptors were just created.
        if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, control_fd, &mut event) } < 0 {
            return Err(os_error());
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                slots: HashMap::new(),
                ready: Vec::new(),
                signalled: false,
                stopping: false,
                ending: 0,
                total: 0,
                starved: Vec::new(),
            }),
            epoll,
            ready_fd,
            control_fd,
            max_pending: max_pending.max(1),
            max_total: max_total.max(1),
            interval: Duration::from_secs_f64(interval.clamp(0.0, 1.0)),
            fill: fill.max(1),
        });
        let runner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("logdriver-fifos".into())
            .spawn(move || runner.run())
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(FifoPoller {
            shared,
            thread: Some(thread),
        })
    }

    /// The eventfd trio waits on (readable when `take` has something).
    #[getter]
    fn ready_fd(&self) -> RawFd {
        self.shared.ready_fd
    }

    /// Start reading `fd` (non-blocking, owned by the caller) under `key`.
    fn add(&self, key: u64, fd: RawFd) -> PyResult<()> {
        let mut state = self.shared.lock();
        if state.slots.contains_key(&key) || key == WAKE_KEY {
            return Err(PyKeyError::new_err(key));
        }
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: key,
        };
        // SAFETY: fd is the caller's open descriptor.
        if unsafe { libc::epoll_ctl(self.shared.epoll, libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            return Err(os_error());
        }
        state.slots.insert(
            key,
            Slot {
                fd,
                pending: Vec::new(),
                eof: false,
                errno: 0,
                paused: false,
                armed: true,
                ending: false,
            },
        );
        Ok(())
    }

    /// Stop reading `key`; once this returns the thread never touches its fd again.
    /// Returns the bytes read and not yet taken.
    fn remove<'py>(&self, py: Python<'py>, key: u64) -> Bound<'py, PyBytes> {
        let mut state = self.shared.lock();
        let pending = match state.slots.remove(&key) {
            Some(mut slot) => {
                // The fd is still open: the caller closes it after this returns.
                self.shared.arm(key, &mut slot, false);
                if slot.ending {
                    state.ending -= 1;
                }
                state.total -= slot.pending.len();
                slot.pending
            }
            None => Vec::new(),
        };
        state.ready.retain(|k| *k != key);
        PyBytes::new(py, &pending)
    }

    /// Stop (`true`) or resume reading `key`: its pipe then fills and its writer blocks.
    fn pause(&self, key: u64, paused: bool) {
        let mut state = self.shared.lock();
        if let Some(slot) = state.slots.get_mut(&key) {
            slot.paused = paused;
            let rearm = !paused
                && !slot.eof
                && slot.errno == 0
                && slot.pending.len() < self.shared.max_pending;
            self.shared.arm(key, slot, rearm);
        }
    }

    /// Every FIFO's new bytes since the last call: `(key, bytes, eof, errno)`, in arrival order.
    fn take<'py>(&self, py: Python<'py>) -> Vec<(u64, Bound<'py, PyBytes>, bool, i32)> {
        let mut value: u64 = 0;
        // SAFETY: ready_fd is a non-blocking eventfd; reading resets it.
        unsafe {
            libc::read(
                self.shared.ready_fd,
                &mut value as *mut u64 as *mut libc::c_void,
                8,
            )
        };
        let mut state = self.shared.lock();
        state.signalled = false;
        let keys = std::mem::take(&mut state.ready);
        let starved = std::mem::take(&mut state.starved);
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let State { slots, total, .. } = &mut *state;
            let Some(slot) = slots.get_mut(&key) else {
                continue;
            };
            let data = PyBytes::new(py, &slot.pending);
            *total -= slot.pending.len();
            slot.pending.clear();
            if slot.pending.capacity() > READ_CHUNK {
                slot.pending = Vec::new(); // an idle FIFO holds no big buffer
            }
            let (eof, errno) = (slot.eof, slot.errno);
            if !eof && errno == 0 && !slot.paused {
                self.shared.arm(key, slot, true);
            }
            out.push((key, data, eof, errno));
        }
        for key in starved {
            if let Some(slot) = state.slots.get_mut(&key) {
                if !slot.eof
                    && slot.errno == 0
                    && !slot.paused
                    && slot.pending.len() < self.shared.max_pending
                {
                    self.shared.arm(key, slot, true);
                }
            }
        }
        out
    }

    /// StopLogging came for `key`: read now, and pause at most 1 ms until it is removed.
    fn ending(&self, key: u64) {
        let mut state = self.shared.lock();
        if let Some(slot) = state.slots.get_mut(&key) {
            if !slot.ending {
                slot.ending = true;
                state.ending += 1;
            }
        }
        drop(state);
        self.hurry();
    }

    /// End the current pause: read every FIFO now.
    fn hurry(&self) {
        let one: u64 = 1;
        // SAFETY: control_fd is an eventfd.
        unsafe {
            libc::write(
                self.shared.control_fd,
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
    }

    /// Read `key`'s FIFO now, on the caller's thread: `(bytes, eof, errno)` including what the
    /// thread read and `take` did not hand out yet (then `take` will not hand it out).
    fn read_now<'py>(&self, py: Python<'py>, key: u64) -> (Bound<'py, PyBytes>, bool, i32) {
        let mut state = self.shared.lock();
        let State {
            slots,
            ready,
            total,
            starved,
            ..
        } = &mut *state;
        let Some(slot) = slots.get_mut(&key) else {
            return (PyBytes::new(py, b""), false, 0);
        };
        if !slot.paused && !slot.eof && slot.errno == 0 {
            self.shared.read_slot(key, slot, total, starved);
        }
        self.shared.hand_out(py, key, slot, total, ready)
    }

    /// Read at most `limit` more bytes of a paused FIFO now, on the caller's thread, with
    /// what was read and not handed out yet: `(bytes, eof, errno)`. It stays paused. (A
    /// `block` rate limit takes a little now and then, so that the daemon's write in progress
    /// completes and a container's stop is not held.)
    fn read_some<'py>(
        &self,
        py: Python<'py>,
        key: u64,
        limit: usize,
    ) -> (Bound<'py, PyBytes>, bool, i32) {
        let mut state = self.shared.lock();
        let State {
            slots,
            ready,
            total,
            ..
        } = &mut *state;
        let Some(slot) = slots.get_mut(&key) else {
            return (PyBytes::new(py, b""), false, 0);
        };
        if !slot.eof && slot.errno == 0 {
            slot.pending.reserve(limit);
            let spare = slot.pending.spare_capacity_mut();
            // SAFETY: reading at most `limit` bytes into the Vec's own spare capacity.
            let n = unsafe { libc::read(slot.fd, spare.as_mut_ptr() as *mut libc::c_void, limit) };
            if n > 0 {
                // SAFETY: the kernel initialised n bytes.
                unsafe { slot.pending.set_len(slot.pending.len() + n as usize) };
                *total += n as usize;
            } else if n == 0 {
                slot.eof = true;
            }
        }
        self.shared.hand_out(py, key, slot, total, ready)
    }

    /// FIFOs being read.
    fn __len__(&self) -> usize {
        self.shared.lock().slots.len()
    }

    /// Stop the thread (FIFOs still added stay the caller's to close).
    fn close(&mut self, py: Python<'_>) {
        {
            let mut state = self.shared.lock();
            state.stopping = true;
        }
        let one: u64 = 1;
        // SAFETY: control_fd is an eventfd.
        unsafe {
            libc::write(
                self.shared.control_fd,
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
        if let Some(thread) = self.thread.take() {
            py.detach(|| {
                let _ = thread.join();
            });
        }
    }
}

impl Drop for FifoPoller {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shared.lock().stopping = true;
            let one: u64 = 1;
            // SAFETY: control_fd is an eventfd.
            unsafe {
                libc::write(
                    self.shared.control_fd,
                    &one as *const u64 as *const libc::c_void,
                    8,
                )
            };
            let _ = thread.join();
        }
        // SAFETY: descriptors this object created; the thread has stopped.
        unsafe {
            libc::close(self.shared.epoll);
            libc::close(self.shared.ready_fd);
            libc::close(self.shared.control_fd);
        }
    }
}
