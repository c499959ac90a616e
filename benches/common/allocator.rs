//! The allocator of the benches that time production work: the one the isobar binary runs on
//! (`isobar::allocator`), so their figures are what the binary does. Each such bench includes this
//! file; `benches/memory.rs` counts bytes on an allocator of its own instead.

#[global_allocator]
static GLOBAL: isobar::allocator::Global = isobar::allocator::Global;
