//! Portico's global allocator: mimalloc, without the aligned entry points for ordinary
//! alignments.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every allocation to `mi_malloc_aligned`. In
//! mimalloc 3 that call has a fast path only for blocks up to 1 KiB whose free-list head
//! happens to be aligned; anything larger (a request's futures, read buffers, header-map
//! tables) goes to its generic aligned path, which over-allocates by `align - 1` and realigns:
//! ~230 instructions a call, 11.7 calls and 4.3k instructions per proxied request in a
//! callgrind profile of the small keep-alive benchmark (docs/performance.md). Yet every
//! mimalloc block of 16 bytes or more is 16-byte aligned and every smaller one 8-byte aligned
//! (its size classes are multiples of two words on 64-bit targets: `MI_ALIGN2W`), exactly the
//! guarantee of the C standard's `malloc`. So, as Rust's own `System` allocator does with
//! `malloc`, an allocation whose alignment is at most 16 and at most its size takes plain
//! `mi_malloc` / `mi_zalloc` / `mi_realloc`; only larger or odd alignments take the aligned
//! calls. `mi_free` frees both kinds.

#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The alignment every mimalloc block of at least this many bytes has (`MI_MAX_ALIGN_SIZE`,
/// `sizeof(max_align_t)` on the 64-bit targets Portico is built for).
const MIN_ALIGN: usize = 16;

/// Whether a block of `size` bytes from plain `mi_malloc` is aligned to `align`: blocks of
/// 16 bytes or more are 16-aligned, smaller ones aligned to their size class (8 or 16).
#[inline]
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

/// mimalloc as Rust's global allocator (see the crate docs).
pub struct Mimalloc;

// SAFETY: every method hands mimalloc a layout's size and, where plain calls cannot promise
// the alignment, the alignment; mimalloc returns null or a block of at least that size and
// alignment, and `mi_free` / `mi_realloc*` accept any block it returned.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl; mimalloc has no preconditions on size or alignment here.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi_malloc(layout.size()) as *mut u8
            } else {
                mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi_zalloc(layout.size()) as *mut u8
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the `GlobalAlloc` contract), so from mimalloc.
        unsafe { mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block must keep its
        // alignment, which a plain `mi_realloc` gives when `plain` holds for the new size.
        unsafe {
            if plain(layout.align(), new_size) {
                mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// Every size and alignment comes back aligned, zeroed when asked, and keeps its bytes
    /// across growth and shrinking (plain and aligned calls, both sides of each threshold).
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let a = Mimalloc;
        let sizes = [
            1usize, 7, 8, 9, 15, 16, 17, 24, 40, 100, 1023, 1024, 1025, 4096, 70_000,
        ];
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for &size in &sizes {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: a non-zero size; each block is freed with its own layout.
                unsafe {
                    for new in [size / 2 + 1, size * 3 + 5] {
                        let p = a.alloc(layout);
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size} align {align}");
                        for i in 0..size {
                            *p.add(i) = i as u8;
                        }
                        let q = a.realloc(p, layout, new);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "realloc {size}->{new} align {align}");
                        for i in 0..size.min(new) {
                            assert_eq!(*q.add(i), i as u8, "byte {i} of {size}->{new}");
                        }
                        a.dealloc(q, Layout::from_size_align(new, align).expect("layout"));
                    }
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }

    /// The mixed cases of `realloc`: a block from the aligned calls (align 16, size under 16)
    /// grown through plain `mi_realloc`, in place or moved, and many live blocks of sizes
    /// that are not multiples of 16 (24, 40, …) from plain `mi_malloc`, each 16-aligned: a
    /// size class of an odd number of words would put every other block off by 8.
    #[test]
    fn aligned_blocks_grow_through_the_plain_calls_and_odd_sizes_stay_16_aligned() {
        let a = Mimalloc;
        let mut live = Vec::new();
        for i in 0..4000usize {
            let size = 1 + i % 15;
            let layout = Layout::from_size_align(size, 16).expect("layout");
            let new = 16 + (i * 8) % 200;
            // SAFETY: non-zero sizes; every block is freed with its last layout.
            unsafe {
                let p = a.alloc(layout);
                assert_eq!(p as usize % 16, 0);
                *p = i as u8;
                let q = a.realloc(p, layout, new);
                assert_eq!(q as usize % 16, 0, "{size} -> {new}");
                assert_eq!(*q, i as u8);
                let odd = Layout::from_size_align(24 + 16 * (i % 4), 16).expect("layout");
                let r = a.alloc(odd);
                assert_eq!(r as usize % 16, 0, "size {}", odd.size());
                live.push((q, Layout::from_size_align(new, 16).expect("layout")));
                live.push((r, odd));
            }
        }
        for (p, layout) in live {
            // SAFETY: allocated above with `layout`.
            unsafe { a.dealloc(p, layout) };
        }
    }

    /// Many live blocks of mixed sizes: none overlaps another (a wrong alignment shortcut
    /// would not show here, but a wrong size would).
    #[test]
    fn live_blocks_do_not_overlap() {
        let a = Mimalloc;
        let mut live: Vec<(usize, usize, Layout)> = Vec::new();
        for i in 0..2000usize {
            let size = 1 + (i * 37) % 3000;
            let layout = Layout::from_size_align(size, 8).expect("layout");
            // SAFETY: freed below with the same layout.
            let p = unsafe { a.alloc(layout) } as usize;
            assert_ne!(p, 0);
            live.push((p, size, layout));
        }
        let mut spans: Vec<(usize, usize)> = live.iter().map(|&(p, s, _)| (p, p + s)).collect();
        spans.sort_unstable();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0));
        for (p, _, layout) in live {
            // SAFETY: allocated above with `layout`.
            unsafe { a.dealloc(p as *mut u8, layout) };
        }
    }
}
