//! Dispatch tables.
