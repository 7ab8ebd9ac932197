//! Deterministic time and bytes for synthetic capture events (the capture writer and inspect
//! tests build their events by hand, without sockets).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock that starts on 2026-05-28 (every `frame.time_epoch` lands in 2026) and advances
/// 250 µs per event.
pub struct Clock(SystemTime);

impl Clock {
    /// A clock at its start, before the first tick.
    pub fn new() -> Clock {
        Clock(UNIX_EPOCH + Duration::from_secs(1_780_000_000))
    }

    /// Advances the clock by 250 µs and returns the new time.
    pub fn tick(&mut self) -> SystemTime {
        self.0 += Duration::from_micros(250);
        self.0
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// Reproducible incompressible bytes (xorshift64, always the same seed), continuing where the
/// previous call stopped.
pub struct Noise(u64);

impl Noise {
    /// A generator at the start of its sequence.
    pub fn new() -> Noise {
        Noise(0x2545_f491_4f6c_dd1d)
    }

    /// The next `len` bytes of the sequence.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0 as u8
            })
            .collect()
    }
}

impl Default for Noise {
    fn default() -> Noise {
        Noise::new()
    }
}
