//! shared bench helpers
