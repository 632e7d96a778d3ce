//! The platform's HTTP server and command line, as a library so that tests start the real
//! server in-process (`http::start` on port 0). The binary (`main.rs`) only parses arguments
//! and sets up logging.

pub mod api;
pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod sending;
pub mod ui;
pub mod webhooks;
