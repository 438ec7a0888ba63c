//! Pure geometry of the box editor: the view transform (zoom and pan), hit-testing and the
//! box edits a drag makes. No DOM here, so it is unit-tested natively.
//!
//! Coordinates: *image* pixels (what the API stores) and *screen* pixels, CSS pixels
//! relative to the canvas' top-left corner: `screen = image * scale + offset`.

use std::borrow::Borrow;

/// An axis-aligned rectangle, `x0 < x1`, `y0 < y1` once [`Rect::normalised`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub fn new(x0: f64, y0: f64, x1: f64, y1: f64) -> Self {
        Self { x0, y0, x1, y1 }
    }

    /// The same rectangle with its corners ordered.
    pub fn normalised(self) -> Self {
        Self {
            x0: self.x0.min(self.x1),
            y0: self.y0.min(self.y1),
            x1: self.x0.max(self.x1),
            y1: self.y0.max(self.y1),
        }
    }

    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f64 {
        self.y1 - self.y0
    }

    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }

    pub fn contains(&self, x: f64, y: f64) -> bool {
        x >= self.x0 && x <= self.x1 && y >= self.y0 && y <= self.y1
    }

    /// Clipped to `0..=w` × `0..=h`.
    pub fn clamped(self, w: f64, h: f64) -> Self {
        let r = self.normalised();
        Self {
            x0: r.x0.clamp(0.0, w),
            y0: r.y0.clamp(0.0, h),
            x1: r.x1.clamp(0.0, w),
            y1: r.y1.clamp(0.0, h),
        }
    }

    /// Moved by `(dx, dy)`, but kept inside `0..=w` × `0..=h` with its size unchanged.
    pub fn moved_within(self, dx: f64, dy: f64, w: f64, h: f64) -> Self {
        let dx = dx.clamp(-self.x0, w - self.x1);
        let dy = dy.clamp(-self.y0, h - self.y1);
        Self::new(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)
    }

    /// Rounded to hundredths of a pixel (what is saved).
    pub fn rounded(self) -> Self {
        let r = shared::api::saved_px;
        Self::new(r(self.x0), r(self.y0), r(self.x1), r(self.y1))
    }
}

/// Zoom and pan: `screen = image * scale + (tx, ty)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub scale: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Default for View {
    fn default() -> Self {
        Self {
            scale: 1.0,
            tx: 0.0,
            ty: 0.0,
        }
    }
}

/// Zoom limits relative to "fit": far enough out to see the whole image small, far enough
/// in to place a box on single pixels.
pub const MIN_ZOOM_OF_FIT: f64 = 0.25;
pub const MAX_SCALE: f64 = 32.0;

impl View {
    /// The whole image, centred, with a small margin.
    pub fn fit(img_w: f64, img_h: f64, canvas_w: f64, canvas_h: f64) -> Self {
        if img_w <= 0.0 || img_h <= 0.0 || canvas_w <= 0.0 || canvas_h <= 0.0 {
            return Self::default();
        }
        let margin = 12.0_f64.min(canvas_w / 10.0).min(canvas_h / 10.0);
        let scale = ((canvas_w - 2.0 * margin) / img_w).min((canvas_h - 2.0 * margin) / img_h);
        Self {
            scale,
            tx: (canvas_w - img_w * scale) / 2.0,
            ty: (canvas_h - img_h * scale) / 2.0,
        }
    }

    pub fn to_screen(&self, x: f64, y: f64) -> (f64, f64) {
        (x * self.scale + self.tx, y * self.scale + self.ty)
    }

    pub fn to_image(&self, sx: f64, sy: f64) -> (f64, f64) {
        ((sx - self.tx) / self.scale, (sy - self.ty) / self.scale)
    }

    pub fn rect_to_screen(&self, r: &Rect) -> Rect {
        let (x0, y0) = self.to_screen(r.x0, r.y0);
        let (x1, y1) = self.to_screen(r.x1, r.y1);
        Rect::new(x0, y0, x1, y1)
    }

    /// Zoomed by `factor` keeping the image point under `(sx, sy)` in place; the scale stays
    /// within `[fit_scale * MIN_ZOOM_OF_FIT, MAX_SCALE]`.
    pub fn zoomed_at(&self, factor: f64, sx: f64, sy: f64, fit_scale: f64) -> Self {
        let min = (fit_scale * MIN_ZOOM_OF_FIT).min(MAX_SCALE);
        let scale = (self.scale * factor).clamp(min, MAX_SCALE.max(min));
        let (ix, iy) = self.to_image(sx, sy);
        Self {
            scale,
            tx: sx - ix * scale,
            ty: sy - iy * scale,
        }
    }

    pub fn panned(&self, dx: f64, dy: f64) -> Self {
        Self {
            scale: self.scale,
            tx: self.tx + dx,
            ty: self.ty + dy,
        }
    }
}

/// One of the eight resize handles of a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handle {
    N,
    S,
    E,
    W,
    NE,
    NW,
    SE,
    SW,
}

impl Handle {
    pub const ALL: [Handle; 8] = [
        Handle::NW,
        Handle::N,
        Handle::NE,
        Handle::E,
        Handle::SE,
        Handle::S,
        Handle::SW,
        Handle::W,
    ];

    /// Where the handle sits on `r` (any coordinate system).
    pub fn point(self, r: &Rect) -> (f64, f64) {
        let cx = (r.x0 + r.x1) / 2.0;
        let cy = (r.y0 + r.y1) / 2.0;
        match self {
            Handle::N => (cx, r.y0),
            Handle::S => (cx, r.y1),
            Handle::E => (r.x1, cy),
            Handle::W => (r.x0, cy),
            Handle::NE => (r.x1, r.y0),
            Handle::NW => (r.x0, r.y0),
            Handle::SE => (r.x1, r.y1),
            Handle::SW => (r.x0, r.y1),
        }
    }

    /// The CSS cursor that shows this handle's direction.
    pub fn cursor(self) -> &'static str {
        match self {
            Handle::N | Handle::S => "ns-resize",
            Handle::E | Handle::W => "ew-resize",
            Handle::NE | Handle::SW => "nesw-resize",
            Handle::NW | Handle::SE => "nwse-resize",
        }
    }

    /// `orig` with this handle dragged to `(x, y)`; the box may flip over, so the result is
    /// normalised.
    pub fn drag(self, orig: &Rect, x: f64, y: f64) -> Rect {
        let mut r = *orig;
        if matches!(self, Handle::W | Handle::NW | Handle::SW) {
            r.x0 = x;
        }
        if matches!(self, Handle::E | Handle::NE | Handle::SE) {
            r.x1 = x;
        }
        if matches!(self, Handle::N | Handle::NW | Handle::NE) {
            r.y0 = y;
        }
        if matches!(self, Handle::S | Handle::SW | Handle::SE) {
            r.y1 = y;
        }
        r.normalised()
    }
}

/// What lies under the pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// A resize handle of the selected box.
    Handle(usize, Handle),
    /// Inside box `i`.
    Inside(usize),
    Nothing,
}

/// Finds what is under screen point `(sx, sy)`: first the handles and the inside of the
/// selected box (so it can be moved even where others overlap it), then the smallest box
/// containing the point (so a small box inside a large one can be picked). Linear in the
/// number of boxes, with no allocation: thousands of boxes take microseconds.
pub fn hit_test<R: Borrow<Rect>>(
    rects: &[R],
    selected: Option<usize>,
    view: &View,
    sx: f64,
    sy: f64,
    handle_radius: f64,
) -> Hit {
    if let Some(i) = selected.filter(|&i| i < rects.len()) {
        let s = view.rect_to_screen(rects[i].borrow());
        // The nearest handle within reach; corners win ties because they come first here.
        let mut best: Option<(f64, Handle)> = None;
        for h in [
            Handle::NW,
            Handle::NE,
            Handle::SE,
            Handle::SW,
            Handle::N,
            Handle::E,
            Handle::S,
            Handle::W,
        ] {
            let (hx, hy) = h.point(&s);
            let d = (hx - sx).abs().max((hy - sy).abs());
            if d <= handle_radius && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, h));
            }
        }
        if let Some((_, h)) = best {
            return Hit::Handle(i, h);
        }
        if s.contains(sx, sy) {
            return Hit::Inside(i);
        }
    }
    let (x, y) = view.to_image(sx, sy);
    let mut best: Option<(f64, usize)> = None;
    for (i, r) in rects.iter().enumerate() {
        let r: &Rect = r.borrow();
        if r.contains(x, y) {
            let a = r.area();
            // `<=`: among equal areas the last drawn (topmost) wins.
            if best.is_none_or(|(ba, _)| a <= ba) {
                best = Some((a, i));
            }
        }
    }
    best.map_or(Hit::Nothing, |(_, i)| Hit::Inside(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_round_trips_and_zooms_about_the_cursor() {
        let v = View::fit(2000.0, 1000.0, 1000.0, 600.0);
        assert!((v.scale - (976.0 / 2000.0)).abs() < 1e-9);
        let (sx, sy) = v.to_screen(500.0, 250.0);
        let (x, y) = v.to_image(sx, sy);
        assert!((x - 500.0).abs() < 1e-9 && (y - 250.0).abs() < 1e-9);
        let z = v.zoomed_at(2.0, sx, sy, v.scale);
        let (zx, zy) = z.to_screen(500.0, 250.0);
        assert!((zx - sx).abs() < 1e-9 && (zy - sy).abs() < 1e-9);
        assert!((z.scale - 2.0 * v.scale).abs() < 1e-9);
        // Clamped at both ends.
        assert_eq!(v.zoomed_at(1e9, 0.0, 0.0, v.scale).scale, MAX_SCALE);
        assert!(
            (v.zoomed_at(1e-9, 0.0, 0.0, v.scale).scale - v.scale * MIN_ZOOM_OF_FIT).abs() < 1e-12
        );
    }

    #[test]
    fn handles_resize_and_flip() {
        let r = Rect::new(10.0, 10.0, 50.0, 40.0);
        assert_eq!(
            Handle::SE.drag(&r, 60.0, 70.0),
            Rect::new(10.0, 10.0, 60.0, 70.0)
        );
        assert_eq!(
            Handle::N.drag(&r, 999.0, 0.0),
            Rect::new(10.0, 0.0, 50.0, 40.0)
        );
        // Dragging the west edge past the east one flips the box.
        assert_eq!(
            Handle::W.drag(&r, 80.0, 0.0),
            Rect::new(50.0, 10.0, 80.0, 40.0)
        );
    }

    #[test]
    fn moves_stay_inside_the_image() {
        let r = Rect::new(10.0, 10.0, 50.0, 40.0);
        assert_eq!(
            r.moved_within(-100.0, 5.0, 100.0, 100.0),
            Rect::new(0.0, 15.0, 40.0, 45.0)
        );
        assert_eq!(
            r.moved_within(100.0, 100.0, 100.0, 100.0),
            Rect::new(60.0, 70.0, 100.0, 100.0)
        );
        assert_eq!(
            Rect::new(-5.0, 120.0, 30.0, 20.0).clamped(100.0, 100.0),
            Rect::new(0.0, 20.0, 30.0, 100.0)
        );
    }

    #[test]
    fn hit_test_prefers_handles_then_selection_then_smallest() {
        let view = View::default();
        let rects = [
            Rect::new(0.0, 0.0, 100.0, 100.0),
            Rect::new(40.0, 40.0, 60.0, 60.0),
        ];
        assert_eq!(
            hit_test(&rects, None, &view, 50.0, 50.0, 6.0),
            Hit::Inside(1)
        );
        assert_eq!(
            hit_test(&rects, None, &view, 10.0, 10.0, 6.0),
            Hit::Inside(0)
        );
        assert_eq!(
            hit_test(&rects, None, &view, 150.0, 10.0, 6.0),
            Hit::Nothing
        );
        // The selected big box wins inside itself, and its handles are reachable.
        assert_eq!(
            hit_test(&rects, Some(0), &view, 50.0, 50.0, 6.0),
            Hit::Inside(0)
        );
        assert_eq!(
            hit_test(&rects, Some(0), &view, 103.0, 98.0, 6.0),
            Hit::Handle(0, Handle::SE)
        );
        assert_eq!(
            hit_test(&rects, Some(1), &view, 50.0, 41.0, 6.0),
            Hit::Handle(1, Handle::N)
        );
        // With zoom, handle reach is in screen pixels.
        let zoomed = View {
            scale: 4.0,
            tx: 0.0,
            ty: 0.0,
        };
        assert_eq!(
            hit_test(&rects, Some(1), &zoomed, 244.0, 200.0, 6.0),
            Hit::Handle(1, Handle::E)
        );
        assert_eq!(
            hit_test(&rects, Some(1), &zoomed, 230.0, 200.0, 6.0),
            Hit::Inside(1)
        );
    }
}
