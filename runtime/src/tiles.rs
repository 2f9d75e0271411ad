//! Running a plane too large for one pass in overlapping tiles, each keeping the core whose
//! surroundings it saw whole, so that tiling changes no pixel beyond the margin's reach.

use crate::Result;

/// Context a tile carries on each side beyond the part of it that is kept (rounded up to
/// the model's size multiple): enough for the networks' receptive field that the seams
/// are invisible.
pub const TILE_MARGIN: usize = 64;

/// How a plane too large to run at once is cut: tiles of `side` (a multiple of the model's
/// size multiple), each keeping its central `core` and reading `margin` around it, so every
/// kept pixel saw the same surroundings as in one pass over the whole plane, up to the
/// margin.
pub(crate) struct Tiles {
    dim: (usize, usize),
    /// Tile size and kept core per axis (a short axis is one tile: core = side = length).
    side: (usize, usize),
    core: (usize, usize),
    margin: usize,
}

impl Tiles {
    pub(crate) fn new((h, w): (usize, usize), pixels: usize, multiple: usize) -> Self {
        let multiple = multiple.max(1);
        let margin = TILE_MARGIN.div_ceil(multiple) * multiple;
        let root = (pixels as f64).sqrt() as usize / multiple * multiple;
        let side = root.max(2 * margin + multiple);
        let axis = |len: usize| {
            if len <= side {
                (len, len)
            } else {
                (side, side - 2 * margin)
            }
        };
        let ((sy, cy), (sx, cx)) = (axis(h), axis(w));
        Tiles {
            dim: (h, w),
            side: (sy, sx),
            core: (cy, cx),
            margin,
        }
    }

    /// Fills `out` (one `h x w` plane per model output) tile by tile: `infer` gets a tile's
    /// size, its input and guide, and returns its outputs.
    pub(crate) fn run(
        &self,
        mut out: Vec<&mut [f32]>,
        mut infer: impl FnMut((usize, usize), &[f32], Option<&[f32]>) -> Result<Vec<Vec<f32>>>,
        input: &[f32],
        guide: Option<&[f32]>,
    ) -> Result<()> {
        let (h, w) = self.dim;
        let (ty, tx) = self.side;
        let (mut tile_in, mut tile_guide) = (vec![0.0; ty * tx], vec![0.0; ty * tx]);
        let cut = |src: &[f32], dst: &mut [f32], (y, x): (usize, usize)| {
            for r in 0..ty {
                let from = (y + r) * w + x;
                dst[r * tx..(r + 1) * tx].copy_from_slice(&src[from..from + tx]);
            }
        };
        for y0 in (0..h).step_by(self.core.0) {
            for x0 in (0..w).step_by(self.core.1) {
                // The tile around the core, moved inside the plane at its edges.
                let y = y0.saturating_sub(self.margin).min(h - ty);
                let x = x0.saturating_sub(self.margin).min(w - tx);
                cut(input, &mut tile_in, (y, x));
                if let Some(g) = guide {
                    cut(g, &mut tile_guide, (y, x));
                }
                let results = infer((ty, tx), &tile_in, guide.map(|_| tile_guide.as_slice()))?;
                let (ky, kx) = ((y0 + self.core.0).min(h), (x0 + self.core.1).min(w));
                for (out, result) in out.iter_mut().zip(&results) {
                    for r in y0..ky {
                        let from = (r - y) * tx + (x0 - x);
                        out[r * w + x0..r * w + kx]
                            .copy_from_slice(&result[from..from + (kx - x0)]);
                    }
                }
            }
        }
        Ok(())
    }
}
