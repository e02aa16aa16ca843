//! The versioned JSON-header protocol (docs/protocol.md).
