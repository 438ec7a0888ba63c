//! OCR pre- and post-processing in plain Rust, shared by the server and the browser so both
//! give the same lines for the same picture: the DB text-region map to rotated boxes
//! (threshold, components, minimum-area rectangles, unclip), CTC greedy decoding, and the
//! measures the evaluation reports (character error rate, exact match, quad IoU).
//!
//! Corners are `[x, y]` pixels of the original image, ordered top-left, top-right,
//! bottom-right, bottom-left (SPEC §7's OCR `pos`).

#[cfg(feature = "image")]
pub mod input;

/// The PP-OCR models take `(x / 255 - 0.5) / 0.5` per channel, channels in **BGR** order
/// (PaddleOCR trains on OpenCV's decoding).
pub const MEAN: f32 = 0.5;
pub const STD: f32 = 0.5;
/// The detector's input sides must be multiples of this.
pub const DET_MULTIPLE: usize = 32;
/// The recogniser reads lines scaled to this height ...
pub const REC_HEIGHT: usize = 48;
/// ... and padded to at least this width (PaddleOCR's `rec_img_shape` 3×48×320).
pub const REC_MIN_WIDTH: usize = 320;
/// One recogniser output column per this many input columns.
pub const REC_STRIDE: usize = 8;

/// A text box: four corners in pixels, TL, TR, BR, BL.
pub type Quad = [[f32; 2]; 4];

/// The DB post-processing settings PP-OCR ships with (`ch_PP-OCRv4_det` in RapidOCR).
#[derive(Debug, Clone, Copy)]
pub struct DbParams {
    /// A map pixel above this is text.
    pub thresh: f32,
    /// A region whose mean probability is below this is dropped.
    pub box_thresh: f32,
    /// How far the shrunk region is grown back: `area * ratio / perimeter`.
    pub unclip_ratio: f32,
    /// At most this many regions are considered (largest maps stay bounded).
    pub max_candidates: usize,
}

impl Default for DbParams {
    fn default() -> Self {
        Self {
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
        }
    }
}

/// The shorter side (map pixels) below which a region is noise.
const MIN_REGION_SIDE: f32 = 3.0;

/// A detected text region: its corners in original-image pixels and its mean probability.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRegion {
    pub quad: Quad,
    pub score: f32,
}

/// Turns a DB probability map (`map_w × map_h`, row-major) into text boxes in the pixels of
/// an `image_w × image_h` original. Regions are returned top to bottom, then left to right
/// (reading order).
pub fn text_regions(
    prob: &[f32],
    map_w: usize,
    map_h: usize,
    image_w: u32,
    image_h: u32,
    params: &DbParams,
) -> Vec<TextRegion> {
    assert_eq!(prob.len(), map_w * map_h, "map size");
    let mask = dilate(
        &prob.iter().map(|&p| p > params.thresh).collect::<Vec<_>>(),
        map_w,
        map_h,
    );
    let mut out = Vec::new();
    for pixels in components(&mask, map_w, map_h)
        .into_iter()
        .take(params.max_candidates)
    {
        let hull = convex_hull(&boundary(&pixels, &mask, map_w, map_h));
        let Some(rect) = min_area_rect(&hull) else {
            continue;
        };
        if rect.short_side() < MIN_REGION_SIDE {
            continue;
        }
        let score = mean_inside(prob, map_w, map_h, &rect.corners());
        if score < params.box_thresh {
            continue;
        }
        let grown = rect.unclip(params.unclip_ratio);
        if grown.short_side() < MIN_REGION_SIDE + 2.0 {
            continue;
        }
        let (sx, sy) = (image_w as f32 / map_w as f32, image_h as f32 / map_h as f32);
        let quad = order_corners(grown.corners().map(|[x, y]| {
            [
                (x * sx).round().clamp(0.0, image_w as f32 - 1.0),
                (y * sy).round().clamp(0.0, image_h as f32 - 1.0),
            ]
        }));
        if dist(quad[0], quad[1]) <= 3.0 || dist(quad[0], quad[3]) <= 3.0 {
            continue;
        }
        out.push(TextRegion { quad, score });
    }
    sort_reading_order(&mut out);
    out
}

/// Top to bottom, and left to right within a line (boxes whose tops differ by under 10 px
/// count as one line, as PaddleOCR's `sorted_boxes`).
pub fn sort_reading_order(regions: &mut [TextRegion]) {
    regions.sort_by(|a, b| {
        (a.quad[0][1], a.quad[0][0])
            .partial_cmp(&(b.quad[0][1], b.quad[0][0]))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for i in 1..regions.len() {
        let mut j = i;
        while j > 0
            && (regions[j].quad[0][1] - regions[j - 1].quad[0][1]).abs() < 10.0
            && regions[j].quad[0][0] < regions[j - 1].quad[0][0]
        {
            regions.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// OpenCV's `dilate` with a 2×2 kernel (anchor at its centre): a pixel is set when it or its
/// left, upper or upper-left neighbour is. Joins characters split by one-pixel gaps.
fn dilate(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = vec![false; mask.len()];
    for y in 0..h {
        for x in 0..w {
            let at = |dx: usize, dy: usize| x >= dx && y >= dy && mask[(y - dy) * w + x - dx];
            out[y * w + x] = at(0, 0) || at(1, 0) || at(0, 1) || at(1, 1);
        }
    }
    out
}

/// 8-connected components of the set pixels, each as its pixel indices, in scan order.
fn components(mask: &[bool], w: usize, h: usize) -> Vec<Vec<usize>> {
    let mut seen = vec![false; mask.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut pixels = Vec::new();
        while let Some(i) = stack.pop() {
            pixels.push(i);
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let n = ny as usize * w + nx as usize;
                    if mask[n] && !seen[n] {
                        seen[n] = true;
                        stack.push(n);
                    }
                }
            }
        }
        out.push(pixels);
    }
    out
}

/// The pixels of a component with a 4-neighbour outside it (its contour), as centres.
fn boundary(pixels: &[usize], mask: &[bool], w: usize, h: usize) -> Vec<[f32; 2]> {
    pixels
        .iter()
        .filter(|&&i| {
            let (x, y) = (i % w, i / w);
            x == 0
                || y == 0
                || x + 1 == w
                || y + 1 == h
                || !mask[i - 1]
                || !mask[i + 1]
                || !mask[i - w]
                || !mask[i + w]
        })
        .map(|&i| [(i % w) as f32, (i / w) as f32])
        .collect()
}

/// Andrew's monotone chain; counter-clockwise in image coordinates' mirror, no collinear
/// points.
fn convex_hull(points: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let mut p = points.to_vec();
    p.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross = |o: [f32; 2], a: [f32; 2], b: [f32; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut hull: Vec<[f32; 2]> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[f32; 2]>> = if pass == 0 {
            Box::new(p.iter())
        } else {
            Box::new(p.iter().rev())
        };
        for &q in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0
            {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}

/// A rotated rectangle: centre, unit axis `u` (its `w` side), and side lengths.
#[derive(Debug, Clone, Copy)]
struct RotatedRect {
    centre: [f32; 2],
    u: [f32; 2],
    w: f32,
    h: f32,
}

impl RotatedRect {
    fn short_side(&self) -> f32 {
        self.w.min(self.h)
    }

    fn corners(&self) -> [[f32; 2]; 4] {
        let [ux, uy] = self.u;
        let (vx, vy) = (-uy, ux);
        let (hw, hh) = (self.w / 2.0, self.h / 2.0);
        let [cx, cy] = self.centre;
        [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)].map(|(a, b)| {
            [
                cx + a * hw * ux + b * hh * vx,
                cy + a * hw * uy + b * hh * vy,
            ]
        })
    }

    /// DB's unclip: the shrunk text kernel grown by `area * ratio / perimeter` on every
    /// side (for a rectangle the round-joined polygon offset's bounding rectangle).
    fn unclip(&self, ratio: f32) -> Self {
        let d = self.w * self.h * ratio / (2.0 * (self.w + self.h)).max(f32::EPSILON);
        Self {
            w: self.w + 2.0 * d,
            h: self.h + 2.0 * d,
            ..*self
        }
    }
}

/// The smallest-area rectangle around a convex hull (rotating calipers: one of its sides
/// lies on a hull edge). Pixel centres span one pixel less than the pixels, so one pixel is
/// added to each side, as OpenCV's contours of a pixel blob would measure it.
fn min_area_rect(hull: &[[f32; 2]]) -> Option<RotatedRect> {
    if hull.is_empty() {
        return None;
    }
    let mut best: Option<(f32, RotatedRect)> = None;
    let edges: Vec<[f32; 2]> = if hull.len() == 1 {
        vec![[1.0, 0.0]]
    } else {
        (0..hull.len())
            .map(|i| {
                let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
                [b[0] - a[0], b[1] - a[1]]
            })
            .collect()
    };
    for e in edges {
        let len = (e[0] * e[0] + e[1] * e[1]).sqrt();
        if len == 0.0 {
            continue;
        }
        let u = [e[0] / len, e[1] / len];
        let v = [-u[1], u[0]];
        let (mut lo_u, mut hi_u, mut lo_v, mut hi_v) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in hull {
            let (pu, pv) = (p[0] * u[0] + p[1] * u[1], p[0] * v[0] + p[1] * v[1]);
            lo_u = lo_u.min(pu);
            hi_u = hi_u.max(pu);
            lo_v = lo_v.min(pv);
            hi_v = hi_v.max(pv);
        }
        let (w, h) = (hi_u - lo_u, hi_v - lo_v);
        let area = w * h;
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let (cu, cv) = ((lo_u + hi_u) / 2.0, (lo_v + hi_v) / 2.0);
            let centre = [cu * u[0] + cv * v[0], cu * u[1] + cv * v[1]];
            best = Some((area, RotatedRect { centre, u, w, h }));
        }
    }
    best.map(|(_, r)| {
        // Prefer the axis closer to horizontal as `w`, so corners come out TL, TR, BR, BL.
        let r = RotatedRect {
            w: r.w + 1.0,
            h: r.h + 1.0,
            ..r
        };
        if r.u[0].abs() >= r.u[1].abs() {
            r
        } else {
            RotatedRect {
                u: [-r.u[1], r.u[0]],
                w: r.h,
                h: r.w,
                ..r
            }
        }
    })
}

/// The mean of the map over the pixels whose centres lie inside the quad (DB's "fast"
/// score).
fn mean_inside(prob: &[f32], w: usize, h: usize, quad: &[[f32; 2]; 4]) -> f32 {
    let xs = quad.iter().map(|p| p[0]);
    let ys = quad.iter().map(|p| p[1]);
    let x0 = xs.clone().fold(f32::MAX, f32::min).floor().max(0.0) as usize;
    let x1 = (xs.fold(f32::MIN, f32::max).ceil() as usize).min(w - 1);
    let y0 = ys.clone().fold(f32::MAX, f32::min).floor().max(0.0) as usize;
    let y1 = (ys.fold(f32::MIN, f32::max).ceil() as usize).min(h - 1);
    let (mut sum, mut n) = (0.0f64, 0u32);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if inside_convex(quad, [x as f32, y as f32]) {
                sum += f64::from(prob[y * w + x]);
                n += 1;
            }
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / f64::from(n)) as f32
    }
}

/// Whether `p` lies inside (or on) a convex polygon of either winding.
fn inside_convex(poly: &[[f32; 2]], p: [f32; 2]) -> bool {
    let (mut pos, mut neg) = (false, false);
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
        let c = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]);
        pos |= c > 1e-4;
        neg |= c < -1e-4;
    }
    !(pos && neg)
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Orders four corners TL, TR, BR, BL: the two left-most points are the left side (upper
/// one first), the other two the right side.
pub fn order_corners(mut p: Quad) -> Quad {
    p.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap_or(std::cmp::Ordering::Equal));
    let (mut left, mut right) = ([p[0], p[1]], [p[2], p[3]]);
    if left[0][1] > left[1][1] {
        left.swap(0, 1);
    }
    if right[0][1] > right[1][1] {
        right.swap(0, 1);
    }
    [left[0], right[0], right[1], left[1]]
}

/// The crop a text line is read from: width and height of the quad's rectangle (the
/// longer of each pair of opposite sides), as PaddleOCR's `get_rotate_crop_image`.
pub fn crop_size(q: &Quad) -> (u32, u32) {
    let w = dist(q[0], q[1]).max(dist(q[2], q[3]));
    let h = dist(q[0], q[3]).max(dist(q[1], q[2]));
    ((w as u32).max(1), (h as u32).max(1))
}

/// The homography mapping the crop's corners `(0,0) (w,0) (w,h) (0,h)` onto `q`, as the
/// 8 coefficients of `[a b c; d e f; g h 1]`, for sampling a perspective crop.
pub fn crop_homography(q: &Quad, w: f32, h: f32) -> [f64; 8] {
    let src = [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]];
    // Two equations per corner: x' (g x + h y + 1) = a x + b y + c, same for y'.
    let mut m = [[0f64; 9]; 8];
    for i in 0..4 {
        let (x, y) = (f64::from(src[i][0]), f64::from(src[i][1]));
        let (u, v) = (f64::from(q[i][0]), f64::from(q[i][1]));
        m[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        m[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    // Gaussian elimination with partial pivoting on the 8×8 system.
    for col in 0..8 {
        let pivot = (col..8)
            .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            .unwrap_or(col);
        m.swap(col, pivot);
        let d = m[col][col];
        if d.abs() < 1e-12 {
            continue;
        }
        m[col][col..].iter_mut().for_each(|v| *v /= d);
        let pivot_row = m[col];
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let f = row[col];
                for (v, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                    *v -= f * p;
                }
            }
        }
    }
    std::array::from_fn(|i| m[i][8])
}

/// Where crop pixel `(x, y)` samples the original under the homography `hm`.
pub fn apply_homography(hm: &[f64; 8], x: f64, y: f64) -> (f64, f64) {
    let d = hm[6] * x + hm[7] * y + 1.0;
    (
        (hm[0] * x + hm[1] * y + hm[2]) / d,
        (hm[3] * x + hm[4] * y + hm[5]) / d,
    )
}

/// CTC greedy decoding of one line: the best class per time step, repeats collapsed,
/// blanks (index 0) dropped; `charset[i - 1]` is class `i`. The confidence is the mean
/// probability of the kept steps (0 for an empty line).
pub fn ctc_greedy(probs: &[f32], classes: usize, charset: &[String]) -> (String, f32) {
    let mut text = String::new();
    let (mut sum, mut n) = (0.0f32, 0u32);
    let mut last = 0usize;
    for step in probs.chunks_exact(classes) {
        let (best, p) = step
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f32::MIN),
                |acc, (i, v)| if v > acc.1 { (i, v) } else { acc },
            );
        if best != 0
            && best != last
            && let Some(c) = charset.get(best - 1)
        {
            text.push_str(c);
            sum += p;
            n += 1;
        }
        last = best;
    }
    (text, if n == 0 { 0.0 } else { sum / n as f32 })
}

/// How texts are compared for exact match and CER: Unicode NFKC is not applied; letters
/// are upper-cased and everything that is not a letter or a digit (spaces, dashes, dots)
/// is dropped, because plates and most labels transcribe characters, not separators.
pub fn normalise_text(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Whether a read text counts as the true one (both [`normalise_text`]ed).
pub fn same_text(read: &str, truth: &str) -> bool {
    normalise_text(read) == normalise_text(truth)
}

/// Edit distance between two strings, in characters (Unicode scalar values).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diag + usize::from(ca != cb));
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Intersection over union of two quads' axis-aligned bounding boxes.
pub fn quad_iou(a: &Quad, b: &Quad) -> f32 {
    let bb = |q: &Quad| {
        q.iter()
            .fold([f32::MAX, f32::MAX, f32::MIN, f32::MIN], |r, p| {
                [
                    r[0].min(p[0]),
                    r[1].min(p[1]),
                    r[2].max(p[0]),
                    r[3].max(p[1]),
                ]
            })
    };
    let (a, b) = (bb(a), bb(b));
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with(w: usize, h: usize, rects: &[(usize, usize, usize, usize)]) -> Vec<f32> {
        let mut m = vec![0.0; w * h];
        for &(x0, y0, x1, y1) in rects {
            for y in y0..y1 {
                for x in x0..x1 {
                    m[y * w + x] = 0.9;
                }
            }
        }
        m
    }

    #[test]
    fn an_axis_aligned_region_becomes_its_grown_box_in_image_pixels() {
        // A 40×8 kernel at (10, 20) on a 100×50 map of a 200×100 image.
        let m = map_with(100, 50, &[(10, 20, 50, 28)]);
        let r = text_regions(&m, 100, 50, 200, 100, &DbParams::default());
        assert_eq!(r.len(), 1);
        // Dilation adds one pixel right and below: 41×9; unclip d = 41*9*1.6/100 = 5.9.
        let d: f32 = 41.0 * 9.0 * 1.6 / (2.0 * 50.0);
        let q = r[0].quad;
        assert!(
            (q[0][0] - ((10.0 - 0.5 - d) * 2.0).round()).abs() <= 1.0,
            "{q:?}"
        );
        assert!(
            (q[0][1] - ((20.0 - 0.5 - d) * 2.0).round()).abs() <= 1.0,
            "{q:?}"
        );
        assert!(
            (q[2][0] - ((51.0 - 0.5 + d) * 2.0).round()).abs() <= 1.0,
            "{q:?}"
        );
        assert!(
            (q[2][1] - ((29.0 - 0.5 + d) * 2.0).round()).abs() <= 1.0,
            "{q:?}"
        );
        // The grown-by-dilation row and column read 0 in the map itself.
        assert!((0.7..0.9).contains(&r[0].score), "{}", r[0].score);
    }

    #[test]
    fn faint_and_tiny_regions_are_dropped_and_lines_come_in_reading_order() {
        let mut m = map_with(
            100,
            60,
            &[(60, 10, 90, 18), (5, 11, 40, 19), (10, 40, 60, 48)],
        );
        m[55 * 100 + 50] = 0.9; // one pixel: too small
        for x in 70..95 {
            for y in 40..48 {
                m[y * 100 + x] = 0.35; // above thresh, below box_thresh
            }
        }
        let r = text_regions(&m, 100, 60, 100, 60, &DbParams::default());
        let lefts: Vec<f32> = r.iter().map(|t| t.quad[0][0]).collect();
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(lefts[0] < lefts[1] && lefts[2] < lefts[1], "{lefts:?}");
        assert!(r[2].quad[0][1] > r[1].quad[2][1], "third line is below");
    }

    #[test]
    fn a_rotated_region_gives_rotated_corners() {
        // A bar at 30 degrees.
        let (w, h) = (120, 120);
        let mut m = vec![0.0; w * h];
        let (s, c) = (30f32.to_radians().sin(), 30f32.to_radians().cos());
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f32 - 60.0, y as f32 - 60.0);
                let (along, across) = (dx * c + dy * s, -dx * s + dy * c);
                if along.abs() < 40.0 && across.abs() < 6.0 {
                    m[y * w + x] = 0.95;
                }
            }
        }
        let r = text_regions(&m, w, h, w as u32, h as u32, &DbParams::default());
        assert_eq!(r.len(), 1);
        let q = r[0].quad;
        let angle = (q[1][1] - q[0][1]).atan2(q[1][0] - q[0][0]).to_degrees();
        assert!(
            (angle - 30.0).abs() < 3.0,
            "top edge at {angle} degrees: {q:?}"
        );
        assert!(
            q[0][0] < q[1][0] && q[3][1] > q[0][1],
            "TL, TR, BR, BL: {q:?}"
        );
    }

    #[test]
    fn homography_maps_the_crop_corners_onto_the_quad() {
        let q: Quad = [[10.0, 20.0], [110.0, 40.0], [105.0, 80.0], [5.0, 60.0]];
        let hm = crop_homography(&q, 100.0, 40.0);
        for (i, (x, y)) in [(0.0, 0.0), (100.0, 0.0), (100.0, 40.0), (0.0, 40.0)]
            .into_iter()
            .enumerate()
        {
            let (u, v) = apply_homography(&hm, x, y);
            assert!((u - f64::from(q[i][0])).abs() < 1e-6 && (v - f64::from(q[i][1])).abs() < 1e-6);
        }
        assert_eq!(crop_size(&q), (101, 40));
    }

    #[test]
    fn ctc_collapses_repeats_and_drops_blanks() {
        let charset: Vec<String> = ["A", "B", "漢"].iter().map(|s| s.to_string()).collect();
        // Steps: A A blank A B 漢 blank → "AAB漢".
        let steps = [1, 1, 0, 1, 2, 3, 0];
        let mut probs = vec![0.0; steps.len() * 4];
        for (t, &c) in steps.iter().enumerate() {
            probs[t * 4 + c] = 0.8;
        }
        let (text, conf) = ctc_greedy(&probs, 4, &charset);
        assert_eq!(text, "AAB漢");
        assert!((conf - 0.8).abs() < 1e-6);
        assert_eq!(ctc_greedy(&[0.0; 8], 4, &charset).0, "");
    }

    #[test]
    fn text_measures() {
        assert_eq!(normalise_text("ab-12 c."), "AB12C");
        assert_eq!(levenshtein("KITTEN", "SITTING"), 3);
        assert_eq!(levenshtein("", "漢字"), 2);
        assert_eq!(levenshtein("漢字", "漢字"), 0);
        let a: Quad = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]];
        let b: Quad = [[5.0, 0.0], [15.0, 0.0], [15.0, 10.0], [5.0, 10.0]];
        assert!((quad_iou(&a, &b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(order_corners([a[2], a[0], a[3], a[1]]), a);
    }
}
