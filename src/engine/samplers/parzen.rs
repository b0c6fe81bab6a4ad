//! Parzen estimators for TPE.
