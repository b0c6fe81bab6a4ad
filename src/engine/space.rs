//! Search space (issue 3). OWNER: samplers engineer.
