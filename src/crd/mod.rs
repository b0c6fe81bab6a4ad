//! crd (stub: being written).
