//! Sources turn the outside world into a [`Snapshot`](crate::store::Snapshot).

pub mod file;
