//! Records stored in Redis and their (de)serialisation.

pub mod job;
pub mod node;
pub mod task;
