//! metrics (stub: being written).
