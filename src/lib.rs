//! The `app` binary's library: the command line, the composition of modules
//! into one process, and the HTTP plumbing every module shares.

pub mod asyncapi;
pub mod cli;
pub mod commands;
pub mod http;
pub mod modules;
pub mod security;
pub mod startup;
pub mod telemetry;
