//! model (skeleton)
