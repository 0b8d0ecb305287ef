//! For the tests against a moto server: its endpoint, and a guard that
//! skips a test when no server is configured (or fails it when
//! `CONVERGE_REQUIRE_MOTO` says one must be). Included with
//! `#[macro_use] #[path = "support/moto.rs"] mod moto;`.

/// The moto server's endpoint (`source scripts/moto.sh start` sets it).
pub fn endpoint() -> Option<String> {
    std::env::var("CONVERGE_TEST_AWS_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
}

/// The endpoint, or returns from the test, saying why, when no moto
/// server is configured; fails instead under `CONVERGE_REQUIRE_MOTO`.
macro_rules! moto_or_skip {
    () => {
        match $crate::moto::endpoint() {
            Some(e) => e,
            None => {
                assert!(
                    std::env::var_os("CONVERGE_REQUIRE_MOTO").is_none(),
                    "CONVERGE_REQUIRE_MOTO is set but CONVERGE_TEST_AWS_ENDPOINT is not: the moto server did not start"
                );
                eprintln!(
                    "skipped: CONVERGE_TEST_AWS_ENDPOINT is not set; run `source scripts/moto.sh start` (scripts/test.sh does)"
                );
                return;
            }
        }
    };
}
