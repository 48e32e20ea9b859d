//! The plugin guide's two example sources, as real code: `dir` (a snapshot source) and
//! `journal` (a log source). docs/writing-a-source.md quotes each file whole below its module
//! comment; tests/suite/guide.rs fails when a quote differs from its file and runs both sources
//! end to end through the emulator (the `guide-action` fixture serves them), their state in moto.

pub mod dir;
pub mod journal;
