//! Labelled grids of slices as 8-bit PNG pictures: the phantom preview, training samples and
//! report figures. Pictures are for people, so every column carries its name.

use std::path::Path;

use font8x8::UnicodeFonts;
use ndarray::{Array2, ArrayView2, s};

use crate::io::{GrayImage, write_png};
use crate::{Error, Result};

const GAP: usize = 4;
const BACKGROUND: u8 = 24;
const TEXT: u8 = 235;
const GLYPH: usize = 8;

/// A grid of equally sized grayscale tiles with optional column titles.
#[derive(Debug, Clone)]
pub struct Grid {
    rows: usize,
    cols: usize,
    /// Size of a tile on the picture (the image size times `zoom`).
    tile: (usize, usize),
    zoom: usize,
    titles: Vec<String>,
    pixels: Array2<u8>,
}

impl Grid {
    /// A grid of `rows x cols` tiles of `tile = (h, w)` pixels, with one title per column
    /// (an empty `titles` draws none).
    pub fn new(rows: usize, cols: usize, tile: (usize, usize), titles: &[&str]) -> Result<Self> {
        Self::zoomed(rows, cols, tile, 1, titles)
    }

    /// Like [`Grid::new`], but each image pixel is drawn as `zoom x zoom` picture pixels, so
    /// small training images stay legible (and their titles fit).
    pub fn zoomed(
        rows: usize,
        cols: usize,
        image: (usize, usize),
        zoom: usize,
        titles: &[&str],
    ) -> Result<Self> {
        let zoom = zoom.max(1);
        let tile = (image.0 * zoom, image.1 * zoom);
        if rows == 0 || cols == 0 || tile.0 == 0 || tile.1 == 0 {
            return Err(Error::Invalid {
                what: "picture grid",
                reason: format!("{rows} x {cols} tiles of {tile:?} pixels is empty"),
            });
        }
        if !titles.is_empty() && titles.len() != cols {
            return Err(Error::Invalid {
                what: "picture grid titles",
                reason: format!("{} titles for {cols} columns", titles.len()),
            });
        }
        let header = if titles.is_empty() {
            0
        } else {
            GLYPH + 2 * GAP
        };
        let h = header + rows * tile.0 + (rows + 1) * GAP;
        let w = cols * tile.1 + (cols + 1) * GAP;
        let mut grid = Grid {
            rows,
            cols,
            tile,
            zoom,
            titles: titles.iter().map(|t| t.to_string()).collect(),
            pixels: Array2::from_elem((h, w), BACKGROUND),
        };
        grid.draw_titles();
        Ok(grid)
    }

    fn header(&self) -> usize {
        if self.titles.is_empty() {
            0
        } else {
            GLYPH + 2 * GAP
        }
    }

    fn draw_titles(&mut self) {
        for c in 0..self.cols {
            let Some(title) = self.titles.get(c).cloned() else {
                continue;
            };
            let x0 = GAP + c * (self.tile.1 + GAP);
            // Centre the title over its tile; a title wider than the tile is cut.
            let max_chars = self.tile.1 / GLYPH;
            let shown: String = title.chars().take(max_chars).collect();
            let width = shown.chars().count() * GLYPH;
            let x = x0 + (self.tile.1 - width) / 2;
            self.text(GAP, x, &shown);
        }
    }

    /// Draws `text` with its top-left corner at (y, x) in the 8x8 bitmap font.
    fn text(&mut self, y: usize, x: usize, text: &str) {
        for (k, ch) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::BASIC_FONTS.get('?'));
            let Some(glyph) = glyph else { continue };
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..GLYPH {
                    if bits & (1 << gx) != 0 {
                        let (py, px) = (y + gy, x + k * GLYPH + gx);
                        if py < self.pixels.nrows() && px < self.pixels.ncols() {
                            self.pixels[[py, px]] = TEXT;
                        }
                    }
                }
            }
        }
    }

    /// Places a slice in tile (row, col), mapping `[0, display_max]` to black..white.
    pub fn set(
        &mut self,
        row: usize,
        col: usize,
        image: ArrayView2<f32>,
        display_max: f32,
    ) -> Result<()> {
        if row >= self.rows || col >= self.cols {
            return Err(Error::Invalid {
                what: "picture grid",
                reason: format!("tile ({row}, {col}) outside {} x {}", self.rows, self.cols),
            });
        }
        let z = self.zoom;
        if (image.nrows() * z, image.ncols() * z) != self.tile {
            return Err(Error::Shape {
                what: "picture tile",
                expected: format!("{:?}", (self.tile.0 / z, self.tile.1 / z)),
                got: format!("{:?}", image.dim()),
            });
        }
        let y = self.header() + GAP + row * (self.tile.0 + GAP);
        let x = GAP + col * (self.tile.1 + GAP);
        let scale = if display_max > 0.0 {
            255.0 / display_max
        } else {
            0.0
        };
        let mut tile = self
            .pixels
            .slice_mut(s![y..y + self.tile.0, x..x + self.tile.1]);
        for ((i, j), p) in tile.indexed_iter_mut() {
            *p = (image[[i / z, j / z]] * scale).round().clamp(0.0, 255.0) as u8;
        }
        Ok(())
    }

    pub fn pixels(&self) -> &Array2<u8> {
        &self.pixels
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_png(path, &GrayImage::U8(self.pixels.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_land_where_asked_and_titles_are_drawn() {
        let mut g = Grid::new(2, 2, (16, 24), &["PD", "PDFS"]).unwrap();
        let white = Array2::<f32>::ones((16, 24));
        g.set(1, 1, white.view(), 1.0).unwrap();
        let header = GLYPH + 2 * GAP;
        let (y, x) = (header + GAP + 16 + GAP, GAP + 24 + GAP);
        assert_eq!(g.pixels()[[y, x]], 255);
        assert_eq!(g.pixels()[[y - 1, x]], BACKGROUND);
        assert!(
            g.pixels()
                .slice(s![..header, ..])
                .iter()
                .any(|&p| p == TEXT)
        );
        assert!(g.set(2, 0, white.view(), 1.0).is_err());
        assert!(
            g.set(0, 0, Array2::<f32>::ones((3, 3)).view(), 1.0)
                .is_err()
        );
    }

    #[test]
    fn zoom_repeats_pixels() {
        let mut g = Grid::zoomed(1, 1, (2, 2), 3, &[]).unwrap();
        let img = Array2::from_shape_vec((2, 2), vec![0.0, 1.0, 0.5, 0.0]).unwrap();
        g.set(0, 0, img.view(), 1.0).unwrap();
        let t = g.pixels().slice(s![GAP..GAP + 6, GAP..GAP + 6]).to_owned();
        assert_eq!(t[[0, 3]], 255);
        assert_eq!(t[[2, 5]], 255);
        assert_eq!(t[[3, 0]], 128);
        assert_eq!(t[[5, 2]], 128);
        assert_eq!(t[[5, 5]], 0);
    }
}
