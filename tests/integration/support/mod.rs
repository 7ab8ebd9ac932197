//! Helpers shared by the integration tests: real tools and real servers, never mocks.
pub mod tshark;
