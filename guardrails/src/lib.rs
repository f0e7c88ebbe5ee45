//! In-process detectors behind Sluice's guardrail policies. Each module is a
//! pure function of the text (weights and lists are compiled in), so the
//! gateway can build them once per config version and call them on the
//! request path without I/O.
pub mod content;
mod fx;
pub mod pii;
pub mod prompt_injection;
