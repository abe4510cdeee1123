//! The rollout crate's public surface: canary scenarios as traces, JSON shapes, properties, and the crate's own rules.

mod json;
mod props;
mod scenarios;
mod support;
mod tidy;
