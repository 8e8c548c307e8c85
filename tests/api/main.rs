//! Black-box tests: one binary, one module per concern.

mod auth;
mod bad_input;
mod boundary;
mod browser;
mod cli;
mod connections;
mod deploy;
mod durability;
mod gateway;
mod health;
mod helpers;
mod laptops;
mod limits;
mod logs;
mod manifests;
mod metrics;
mod openapi;
mod ports;
mod postgres;
mod process;
mod prometheus;
mod redis;
mod security;
mod split;
mod store;
mod topology;
