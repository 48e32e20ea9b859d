//! The one integration test binary.
mod runtime;
mod shipping;
mod s3_client;
mod emulator;
mod lifecycle;
mod s3_feed;
mod hooks;
