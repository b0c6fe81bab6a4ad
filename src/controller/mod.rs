//! controller (stub: being written).
