//! Shared helpers of the end-to-end tests.

pub mod chaos;
pub mod example;
pub mod metric;
#[macro_use]
pub mod moto;

/// Sends the engine's log to the test's output when `CONVERGE_TEST_LOG`
/// holds a filter (`CONVERGE_TEST_LOG=converge=info`), to see which steps
/// a slow or failing run took; silent otherwise. Safe to call from every
/// test: only the first call installs the subscriber.
pub fn log_if_asked() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("CONVERGE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}
