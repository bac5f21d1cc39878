//! Reproducible screen-content sets: the kinds of screens a support session shows, generated
//! from a fixed seed so every run encodes identical frames.

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

/// A kind of screen content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// A desktop where nothing moves.
    Static,
    /// Someone typing into a document.
    Typing,
    /// A document scrolling.
    Scrolling,
    /// A window dragged across the desktop.
    Dragging,
    /// Video-like motion in part of the screen.
    Video,
}

impl Content {
    /// Every set.
    pub const ALL: [Content; 5] = [Content::Static, Content::Typing, Content::Scrolling, Content::Dragging, Content::Video];
}

/// Generates the frames of one set (BGRA, tightly packed).
pub struct Generator {
    content: Content,
    width: usize,
    height: usize,
    desktop: Vec<u8>,
    document: Vec<u8>,
    doc_height: usize,
    rng: StdRng,
    frame: usize,
}

fn fill(buf: &mut [u8], width: usize, x0: usize, y0: usize, w: usize, h: usize, bgra: [u8; 4]) {
    let height = buf.len() / 4 / width;
    for y in y0..(y0 + h).min(height) {
        for x in x0..(x0 + w).min(width) {
            let i = (y * width + x) * 4;
            buf[i..i + 4].copy_from_slice(&bgra);
        }
    }
}

/// Dark "text" bars on a light background, like lines of a document.
fn text_lines(buf: &mut [u8], width: usize, x0: usize, y0: usize, w: usize, h: usize, rng: &mut StdRng) {
    fill(buf, width, x0, y0, w, h, [250, 250, 250, 0]);
    let mut y = y0 + 8;
    while y + 10 < y0 + h {
        let mut x = x0 + 12;
        let line_end = x0 + rng.random_range(w / 2..w.max(w / 2 + 1)) - 12;
        while x + 8 < line_end {
            let word = rng.random_range(3..9) * 7;
            fill(buf, width, x, y, word.min(line_end - x), 9, [40, 40, 40, 0]);
            x += word + 7;
        }
        y += 18;
    }
}

impl Generator {
    /// A generator for `content` at `width` × `height`.
    #[must_use]
    pub fn new(content: Content, width: usize, height: usize) -> Generator {
        let mut rng = StdRng::seed_from_u64(0xDE5C_0001);
        let mut desktop = vec![0u8; width * height * 4];
        for y in 0..height {
            let shade = 90 + (y * 60 / height) as u8;
            fill(&mut desktop, width, 0, y, width, 1, [shade, 70, 40, 0]);
        }
        // A few windows with title bars and text.
        for i in 0..3 {
            let (x, y) = (width / 10 + i * width / 5, height / 8 + i * height / 10);
            let (w, h) = (width / 2, height / 2);
            fill(&mut desktop, width, x, y, w, 28, [120, 90, 60, 0]);
            text_lines(&mut desktop, width, x, y + 28, w, h - 28, &mut rng);
        }
        fill(&mut desktop, width, 0, height - 40, width, 40, [30, 30, 30, 0]);
        let doc_height = height * 4;
        let mut document = vec![0u8; width * doc_height * 4];
        text_lines(&mut document, width, 0, 0, width, doc_height, &mut rng);
        Generator { content, width, height, desktop, document, doc_height, rng, frame: 0 }
    }

    /// The next frame.
    pub fn next_frame(&mut self) -> Vec<u8> {
        let (w, h, n) = (self.width, self.height, self.frame);
        self.frame += 1;
        let mut out = self.desktop.clone();
        match self.content {
            Content::Static => {}
            Content::Typing => {
                // Characters appear one by one in the front window.
                let (x0, y0) = (w / 10 + 2 * w / 5 + 12, h / 8 + 2 * h / 10 + 40);
                fill(&mut out, w, x0, y0, w / 2 - 24, 18 * 6, [250, 250, 250, 0]);
                for c in 0..n {
                    let per_line = (w / 2 - 24) / 8;
                    let (line, col) = (c / per_line.max(1), c % per_line.max(1));
                    if line >= 6 {
                        break;
                    }
                    if c % 6 != 5 {
                        fill(&mut out, w, x0 + col * 8, y0 + line * 18, 6, 10, [30, 30, 30, 0]);
                    }
                }
            }
            Content::Scrolling => {
                let top = (n * 3) % (self.doc_height - h);
                let rows = &self.document[top * w * 4..(top + h) * w * 4];
                out.copy_from_slice(rows);
            }
            Content::Dragging => {
                let (ww, wh) = (w / 3, h / 3);
                let x = (n * 8) % (w - ww);
                let y = (n * 4) % (h - wh);
                fill(&mut out, w, x, y, ww, 24, [160, 110, 70, 0]);
                fill(&mut out, w, x, y + 24, ww, wh - 24, [235, 235, 235, 0]);
            }
            Content::Video => {
                // A third of the screen changes everywhere, every frame.
                let (x0, y0, vw, vh) = (w / 3, h / 4, w / 3, h / 2);
                let phase = n as f32 * 0.15;
                for y in y0..y0 + vh {
                    for x in x0..x0 + vw {
                        let i = (y * w + x) * 4;
                        let v = ((x as f32 * 0.05 + phase).sin() * 60.0 + (y as f32 * 0.04 - phase).cos() * 60.0 + 128.0) as u8;
                        let noise: u8 = self.rng.random_range(0..24);
                        out[i] = v.saturating_add(noise);
                        out[i + 1] = v / 2 + noise;
                        out[i + 2] = 255 - v;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_reproducible_and_move_as_described() {
        for content in Content::ALL {
            let mut a = Generator::new(content, 320, 240);
            let mut b = Generator::new(content, 320, 240);
            let (a0, a1) = (a.next_frame(), a.next_frame());
            assert_eq!(a0, b.next_frame(), "{content:?} is reproducible");
            assert_eq!(a0.len(), 320 * 240 * 4);
            if content == Content::Static {
                assert_eq!(a0, a1);
            } else {
                assert_ne!(a0, a1, "{content:?} changes between frames");
            }
        }
    }
}
