//! projector (next issue)
