//! runner (stub: being written).
