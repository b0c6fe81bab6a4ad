//! Samplers (issue 3). OWNER: samplers engineer.
