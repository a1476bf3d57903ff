//! Domain model of fcd: services, functions, triggers, custom domains, their validation rules and FC's limits, and the one
//! error type every layer reports in. No IO happens here.
//!
//! The model types derive serde with FC's camelCase field names because the same shapes are what
//! the store persists and what the API returns; fields fcd accepts but does not act on yet are
//! kept as raw JSON objects so they round-trip unchanged.

pub mod configs;
pub mod domains;
pub mod error;
pub mod fc3;
pub mod layers;
pub mod limits;
pub mod model;
pub mod names;
pub mod schedule;
pub mod tags;
pub mod time;
pub mod triggers;
pub mod versions;

pub use error::FcError;
