//! control (skeleton)
