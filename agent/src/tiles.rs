//! Change detection by comparing tiles of the screen with the last image, for desktops that
//! cannot say what was drawn (Windows' GDI; X11 without DAMAGE).
//!
//! The last image is kept; a new one is compared tile by tile (64 × 64 pixels, row slices
//! compared with `memcmp`, a changed tile stops being compared), and only changed tiles are
//! copied in. An unchanged 1080p screen costs one pass of compares and no copy; the changed
//! area is what an encoder or a dirty-rectangle source would want to know.

/// Edge of a tile in pixels.
pub const TILE: usize = 64;

/// An area of the image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: usize,
    /// Top edge.
    pub y: usize,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

/// The last image (BGRA, tightly packed) and what changed in the last update.
#[derive(Debug, Default)]
pub struct Tiles {
    width: usize,
    height: usize,
    image: Vec<u8>,
    /// Per tile of the last update: whether it changed (scratch, kept to avoid allocating).
    changed: Vec<bool>,
}

impl Tiles {
    /// No image yet: the first update reports everything changed.
    #[must_use]
    pub fn new() -> Tiles {
        Tiles::default()
    }

    /// Whether there is no image yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.image.is_empty()
    }

    /// Forgets the image (the next update reports everything changed).
    pub fn clear(&mut self) {
        self.image.clear();
    }

    /// The last image: `height` rows of `width × 4` bytes.
    #[must_use]
    pub fn image(&self) -> &[u8] {
        &self.image
    }

    /// Takes the top-left `width` × `height` pixels of `frame` (rows `stride` bytes apart)
    /// as the new image and returns the area of the tiles that changed (their bounding box),
    /// or `None` when nothing did. A new size counts as a change everywhere.
    ///
    /// # Panics
    /// If `frame` is smaller than `height` rows of `stride` bytes or `stride < width × 4`.
    pub fn update(&mut self, frame: &[u8], stride: usize, width: usize, height: usize) -> Option<Rect> {
        let row_bytes = width * 4;
        assert!(stride >= row_bytes && frame.len() >= stride * height.saturating_sub(1) + row_bytes, "frame too small");
        if width == 0 || height == 0 {
            return None;
        }
        let (columns, rows) = (width.div_ceil(TILE), height.div_ceil(TILE));
        if self.width != width || self.height != height || self.image.len() != row_bytes * height {
            self.width = width;
            self.height = height;
            self.image = vec![0; row_bytes * height];
            for y in 0..height {
                self.image[y * row_bytes..(y + 1) * row_bytes].copy_from_slice(&frame[y * stride..y * stride + row_bytes]);
            }
            return Some(Rect { x: 0, y: 0, width, height });
        }
        self.changed.clear();
        self.changed.resize(columns * rows, false);
        let mut bounds: Option<(usize, usize, usize, usize)> = None;
        for tile_row in 0..rows {
            let (y0, y1) = (tile_row * TILE, ((tile_row + 1) * TILE).min(height));
            let changed = &mut self.changed[tile_row * columns..(tile_row + 1) * columns];
            for y in y0..y1 {
                let new = &frame[y * stride..y * stride + row_bytes];
                let old = &self.image[y * row_bytes..(y + 1) * row_bytes];
                if new == old {
                    continue;
                }
                for (column, is_changed) in changed.iter_mut().enumerate().filter(|(_, c)| !**c) {
                    let (b0, b1) = (column * TILE * 4, ((column + 1) * TILE * 4).min(row_bytes));
                    *is_changed = new[b0..b1] != old[b0..b1];
                }
            }
            for (column, _) in changed.iter().enumerate().filter(|(_, c)| **c) {
                let (b0, b1) = (column * TILE * 4, ((column + 1) * TILE * 4).min(row_bytes));
                for y in y0..y1 {
                    self.image[y * row_bytes + b0..y * row_bytes + b1].copy_from_slice(&frame[y * stride + b0..y * stride + b1]);
                }
                let (x0, x1) = (column * TILE, ((column + 1) * TILE).min(width));
                bounds = Some(match bounds {
                    None => (x0, y0, x1, y1),
                    Some((a, b, c, d)) => (a.min(x0), b.min(y0), c.max(x1), d.max(y1)),
                });
            }
        }
        bounds.map(|(x0, y0, x1, y1)| Rect { x: x0, y: y0, width: x1 - x0, height: y1 - y0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `width` × `height` BGRA image with rows `stride` bytes apart, padding bytes 0xEE.
    fn image(width: usize, height: usize, stride: usize, colour: [u8; 4]) -> Vec<u8> {
        let mut v = vec![0xEE; stride * height];
        for y in 0..height {
            for x in 0..width {
                v[y * stride + x * 4..y * stride + x * 4 + 4].copy_from_slice(&colour);
            }
        }
        v
    }

    fn set(frame: &mut [u8], stride: usize, x: usize, y: usize, colour: [u8; 4]) {
        frame[y * stride + x * 4..y * stride + x * 4 + 4].copy_from_slice(&colour);
    }

    #[test]
    fn the_first_image_and_a_new_size_change_everything() {
        let mut tiles = Tiles::new();
        assert!(tiles.is_empty());
        let frame = image(150, 70, 150 * 4, [1, 2, 3, 0]);
        assert_eq!(tiles.update(&frame, 600, 150, 70), Some(Rect { x: 0, y: 0, width: 150, height: 70 }));
        assert_eq!(tiles.update(&frame, 600, 150, 70), None, "the same image again is no change");
        let smaller = image(100, 70, 400, [1, 2, 3, 0]);
        assert_eq!(tiles.update(&smaller, 400, 100, 70), Some(Rect { x: 0, y: 0, width: 100, height: 70 }));
    }

    #[test]
    fn one_changed_pixel_marks_its_tile_only() {
        let (w, h, stride) = (200, 150, 200 * 4 + 32);
        let mut tiles = Tiles::new();
        let mut frame = image(w, h, stride, [10, 20, 30, 0]);
        tiles.update(&frame, stride, w, h);
        set(&mut frame, stride, 70, 130, [99, 99, 99, 0]);
        // Column 1 (x 64..128), row 2 (y 128..150, the short last row of tiles).
        assert_eq!(tiles.update(&frame, stride, w, h), Some(Rect { x: 64, y: 128, width: 64, height: 22 }));
        assert_eq!(&tiles.image()[(130 * w + 70) * 4..(130 * w + 70) * 4 + 4], &[99, 99, 99, 0], "the change was copied in");
        assert_eq!(tiles.update(&frame, stride, w, h), None);
    }

    #[test]
    fn changes_in_several_tiles_give_their_bounding_box() {
        let (w, h, stride) = (200, 150, 200 * 4);
        let mut tiles = Tiles::new();
        let mut frame = image(w, h, stride, [0; 4]);
        tiles.update(&frame, stride, w, h);
        set(&mut frame, stride, 5, 70, [1, 0, 0, 0]);
        set(&mut frame, stride, 199, 10, [0, 1, 0, 0]);
        // Tiles (0, 1) and (3, 0): the last column is 8 pixels wide (192..200).
        assert_eq!(tiles.update(&frame, stride, w, h), Some(Rect { x: 0, y: 0, width: 200, height: 128 }));
        let copy: Vec<u8> = (0..h).flat_map(|y| frame[y * stride..y * stride + w * 4].to_vec()).collect();
        assert_eq!(tiles.image(), &copy[..], "the kept image equals the frame");
    }

    #[test]
    fn padding_beyond_the_width_is_ignored() {
        let (w, h, stride) = (64, 64, 64 * 4 + 16);
        let mut tiles = Tiles::new();
        let mut frame = image(w, h, stride, [5; 4]);
        tiles.update(&frame, stride, w, h);
        frame[stride - 1] = 0; // a padding byte
        assert_eq!(tiles.update(&frame, stride, w, h), None);
        tiles.clear();
        assert!(tiles.update(&frame, stride, w, h).is_some(), "after clear everything is new");
    }
}
