//! Records stored in Redis and their (de)serialisation.

pub mod ident;
pub mod job;
pub mod node;
pub mod task;
