//! Helpers shared by the integration tests: real tools and real servers, never mocks.

pub mod daemon;
pub mod nginx;
pub mod process;
pub mod reading;
pub mod running;
pub mod synthetic;
pub mod temp_dir;
pub mod tshark;
pub mod upstream;
pub mod venv;

use std::future::Future;
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use tokio::time::timeout;

/// One kibibyte.
pub const KIB: usize = 1024;
/// One mebibyte.
pub const MIB: usize = 1024 * 1024;

/// Far above what any async test needs: reaching it means something hangs.
pub const TEST_LIMIT: Duration = Duration::from_secs(40);

/// Runs a test body, failing it if it does not finish within [`TEST_LIMIT`].
pub async fn bounded<F: Future>(what: &str, body: F) -> F::Output {
    timeout(TEST_LIMIT, body)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not finish within {TEST_LIMIT:?}"))
}

/// `len` reproducible random bytes (ChaCha8 seeded with `seed`).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// Compares two buffers without printing megabytes when they differ.
pub fn assert_same(expected: &[u8], got: &[u8], what: &str) {
    if expected != got {
        let first = expected.iter().zip(got).position(|(a, b)| a != b);
        panic!(
            "{what}: expected {} bytes, got {}; first differing offset {first:?}",
            expected.len(),
            got.len()
        );
    }
}

/// The capture file a `faultline demo` names on its `capture: FILE (…)` line.
pub fn demo_capture(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("capture: "))
        .and_then(|rest| rest.split(" (").next())
        .unwrap_or_else(|| panic!("no capture line:\n{stdout}"))
}
