//! Small building blocks shared by more than one layer.

pub(crate) mod mapping;
pub(crate) mod table;
