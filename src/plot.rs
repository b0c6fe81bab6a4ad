//! plot (stub: being written).
