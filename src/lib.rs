//! picket: a self-hosted error tracker that speaks the Sentry protocol.
//!
//! The library holds every part of the server; `main.rs` only parses the command line and
//! dispatches. Dependencies point one way: [`event`] (the typed event, normalization and
//! grouping) knows nothing of HTTP or storage; [`store`] knows nothing of HTTP; [`intake`],
//! [`pipeline`], [`control`] and [`server`] sit on top.

pub mod alert;
pub mod cli;
pub mod config;
pub mod event;
pub mod forward;
pub mod ids;
pub mod intake;
pub mod manage;
pub mod outbound;
pub mod pipeline;
pub mod retention;
pub mod server;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod tail;
pub mod time;
pub mod web;
