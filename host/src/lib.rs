//! cln-autoreload: a Core Lightning plugin that runs the plugins you are
//! developing, forwards everything between them and lightningd, and reloads
//! each one the moment its file changes.
pub mod framing;
pub mod init;
pub mod jsonrpc;
pub mod locate;
pub mod manifest;
