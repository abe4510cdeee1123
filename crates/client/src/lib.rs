//! client (skeleton)
