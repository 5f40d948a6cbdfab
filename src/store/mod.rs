//! Block store: the codec between file blocks and pool objects
//! (same-filled, raw, lz4). To be written with the filesystem (issue 3).
