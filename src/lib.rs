//! picket: a self-hosted error tracker that speaks the Sentry protocol.
//!
//! The library holds every part of the server; `main.rs` only parses the command line and
//! dispatches. Dependencies point one way: [`ids`] holds value types and imports nothing of
//! picket; [`event`] (the typed event, normalization and grouping) knows nothing of HTTP or
//! storage; [`store`] knows nothing of HTTP, the UI, mail or the network; [`manage`] is the one
//! layer that changes things on someone's behalf, and the CLI ([`cli`]), the web UI ([`web`])
//! and intake ([`intake`], through [`pipeline`]) sit on top, run by [`server`]. A test over the
//! `crate::` paths of `src/` keeps these arrows from turning upward.

pub mod alert;
pub mod api;
pub mod artifacts;
pub mod cli;
pub mod config;
pub mod conn;
pub mod event;
pub mod forward;
pub mod identity;
pub mod ids;
pub mod intake;
pub mod janitor;
pub mod manage;
pub mod monitors;
pub mod outbound;
pub mod pipeline;
pub mod server;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod tail;
pub mod time;
pub mod web;

#[cfg(test)]
mod layering;
