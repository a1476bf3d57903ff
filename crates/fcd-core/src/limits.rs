//! FC 2.0's documented limits and defaults (fc-api.md section 6, fc-runtime-contract.md section 13).

/// Largest synchronous invocation payload.
pub const SYNC_PAYLOAD_MAX: usize = 32 * 1024 * 1024;
/// Largest asynchronous invocation payload.
pub const ASYNC_PAYLOAD_MAX: usize = 128 * 1024;
/// Largest code zip accepted inline through the API (the limit applies to the decoded zip).
pub const CODE_ZIP_MAX: usize = 100 * 1024 * 1024;
/// Largest total uncompressed size of a code package; guards against zip bombs.
pub const CODE_UNCOMPRESSED_MAX: u64 = 500 * 1024 * 1024;
/// Most entries a code package may hold.
pub const CODE_ENTRIES_MAX: usize = 65_536;
/// Log tail returned in `X-Fc-Log-Result`.
pub const LOG_TAIL_MAX: usize = 4096;
/// Total size of a function's user environment variables.
pub const ENV_TOTAL_MAX: usize = 4096;

pub const TIMEOUT_DEFAULT: u32 = 3;
pub const TIMEOUT_MIN: u32 = 1;
pub const TIMEOUT_MAX: u32 = 86_400;
pub const MEMORY_DEFAULT: u32 = 128;
pub const MEMORY_MIN: u32 = 128;
pub const MEMORY_MAX: u32 = 32_768;
pub const INIT_TIMEOUT_DEFAULT: u32 = 3;
pub const INIT_TIMEOUT_MAX: u32 = 300;
pub const LIFECYCLE_HOOK_TIMEOUT_MAX: u32 = 90;
pub const INSTANCE_CONCURRENCY_MAX: u32 = 200;
pub const CA_PORT_DEFAULT: u16 = 9000;
pub const FUNCTIONS_PER_SERVICE_MAX: usize = 50;
pub const DESCRIPTION_MAX: usize = 256;
pub const LIST_LIMIT_DEFAULT: u32 = 20;
pub const LIST_LIMIT_MAX: u32 = 100;
