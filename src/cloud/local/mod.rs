//! The embedded local cloud: a simulated region kept in a file.
