//! The integration tests, one binary with a module per area (one link instead of sixteen).

mod common;

mod architecture;
mod authoring;
mod backend_double;
mod browser;
mod cli;
mod compare_runs;
mod connection_reuse;
mod docs;
mod hardening;
mod hooks_runs;
mod kubernetes;
mod open_model;
mod openai_runs;
mod outputs;
mod oversized;
mod prometheus;
mod prompt_sets;
mod properties;
mod python_clients;
mod real_inference;
mod report;
mod schemas;
mod sim_server;
mod simulator_runs;
mod sizes;
mod thresholds_runs;
mod wire_reads;
mod workflow;
mod workloads;
