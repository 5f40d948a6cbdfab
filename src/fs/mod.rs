//! Filesystem core: inodes, directories, block maps, permissions.
//! No FUSE types in here; testable without a mount. (issue 3)
