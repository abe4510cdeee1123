//! testkit (skeleton)
