//! Demo templates (`POST /api/instances {"template": "shapes"}`): an instance with a
//! generated, seeded dataset, so a new user can train at once: `shapes` (classification,
//! one shape per image in folders per label), `scenes` (object detection, several shapes
//! per image with Pascal VOC boxes beside each) and `signs` (OCR, one or two lines of text
//! per image, rendered in DejaVu Sans, with VOC boxes whose `<name>` is the text). No
//! third-party images: every picture is drawn here.

use std::path::Path;

use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const TEMPLATES: &[&str] = &["shapes", "scenes", "signs"];
/// Images of the `signs` template: a 10% validation split of 6.
pub const SIGNS: usize = 60;
const SIGN_SIZE: (u32, u32) = (320, 128);
/// Images of the `scenes` template: enough for a 10% validation split of 8.
pub const SCENES: usize = 80;
const SCENE_SIDE: u32 = 160;
pub const SHAPES: [&str; 3] = ["circle", "square", "triangle"];
/// Images per shape: enough for a 10% validation split of 12 images.
pub const PER_SHAPE: usize = 40;
const SIDE: u32 = 96;

/// Writes `circle/`, `square/` and `triangle/` folders of PNGs under `dir`.
pub fn write_shapes(dir: &Path, seed: u64) -> std::io::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    for shape in SHAPES {
        let sub = dir.join(shape);
        std::fs::create_dir_all(&sub)?;
        for i in 0..PER_SHAPE {
            let img = draw(shape, &mut rng);
            let mut png = std::io::Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png)
                .map_err(std::io::Error::other)?;
            std::fs::write(sub.join(format!("{shape}-{i:03}.png")), png.into_inner())?;
        }
    }
    Ok(())
}

/// One shape of random size, place and colour on a random, noisy background.
fn draw(shape: &str, rng: &mut StdRng) -> RgbImage {
    let bg = random_colour(rng);
    let mut fg = random_colour(rng);
    // Keep the shape visible against its background.
    while distance(bg, fg) < 120.0 {
        fg = random_colour(rng);
    }
    let side = SIDE as f32;
    let r = rng.gen_range(0.18..0.38) * side;
    let cx = rng.gen_range(r..side - r);
    let cy = rng.gen_range(r..side - r);
    let angle: f32 = rng.gen_range(0.0..std::f32::consts::TAU);
    let mut img = RgbImage::new(SIDE, SIDE);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let base = if inside(shape, dx, dy, r, angle) {
            fg
        } else {
            bg
        };
        let noise: i16 = rng.gen_range(-12..=12);
        *px = Rgb(base.map(|c| (i16::from(c) + noise).clamp(0, 255) as u8));
    }
    img
}

/// Equilateral triangle with circumradius `r`, rotated by `angle`, centred at the origin.
/// Writes `scene-NNN.png` with `scene-NNN.xml` (Pascal VOC) beside it: one to four shapes
/// of 14-44 px radius per image, each box tight around the shape's pixels.
pub fn write_scenes(dir: &Path, seed: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..SCENES {
        let (img, boxes) = draw_scene(&mut rng);
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png)
            .map_err(std::io::Error::other)?;
        std::fs::write(dir.join(format!("scene-{i:03}.png")), png.into_inner())?;
        let mut xml = format!(
            "<annotation><filename>scene-{i:03}.png</filename><size><width>{SCENE_SIDE}</width><height>{SCENE_SIDE}</height><depth>3</depth></size>"
        );
        for (shape, [x0, y0, x1, y1]) in boxes {
            xml.push_str(&format!(
                "<object><name>{shape}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox><truncated>0</truncated><difficult>0</difficult></object>"
            ));
        }
        xml.push_str("<segmented>0</segmented></annotation>\n");
        std::fs::write(dir.join(format!("scene-{i:03}.xml")), xml)?;
    }
    Ok(())
}

/// Writes `sign-NNN.png` with `sign-NNN.xml` beside it: one or two lines of text (codes
/// like `KX-4821`, words like `EXIT`) in DejaVu Sans at 26-44 px on a plain, noisy sign,
/// each line's box a few pixels around its glyphs and its `<name>` the text.
pub fn write_signs(dir: &Path, seed: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let font = ab_glyph::FontRef::try_from_slice(dejavu::sans::regular())
        .map_err(std::io::Error::other)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let (w, h) = SIGN_SIZE;
    for i in 0..SIGNS {
        let (img, lines) = draw_sign(&font, &mut rng);
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png)
            .map_err(std::io::Error::other)?;
        std::fs::write(dir.join(format!("sign-{i:03}.png")), png.into_inner())?;
        let mut xml = format!(
            "<annotation><filename>sign-{i:03}.png</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>"
        );
        for (text, [x0, y0, x1, y1]) in lines {
            xml.push_str(&format!(
                "<object><name>{text}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox><truncated>0</truncated><difficult>0</difficult></object>"
            ));
        }
        xml.push_str("<segmented>0</segmented></annotation>\n");
        std::fs::write(dir.join(format!("sign-{i:03}.xml")), xml)?;
    }
    Ok(())
}

const WORDS: [&str; 12] = [
    "EXIT", "OPEN", "ROOM", "GATE", "DOCK", "BAY", "LEVEL", "TRUCK", "ZONE", "STOP", "DEPOT",
    "AISLE",
];

/// A line of sign text: a word and a number, or a code of letters and digits.
fn sign_text(rng: &mut StdRng) -> String {
    let letter = |rng: &mut StdRng| char::from(b'A' + rng.gen_range(0..26u8));
    match rng.gen_range(0..3) {
        0 => format!(
            "{} {}",
            WORDS[rng.gen_range(0..WORDS.len())],
            rng.gen_range(1..100)
        ),
        1 => format!(
            "{}{}-{:04}",
            letter(rng),
            letter(rng),
            rng.gen_range(0..10_000)
        ),
        _ => format!("{}{}{}", letter(rng), rng.gen_range(10..1000), letter(rng)),
    }
}

/// A sign of one or two lines and their boxes (`[xmin, ymin, xmax, ymax]`).
fn draw_sign(
    font: &ab_glyph::FontRef<'_>,
    rng: &mut StdRng,
) -> (RgbImage, Vec<(String, [u32; 4])>) {
    use ab_glyph::{Font, PxScale, ScaleFont, point};
    let (w, h) = SIGN_SIZE;
    let bg = random_colour(rng);
    let mut fg = random_colour(rng);
    // Text must read clearly against its sign.
    while distance(bg, fg) < 200.0 {
        fg = random_colour(rng);
    }
    let mut img = RgbImage::from_fn(w, h, |_, _| {
        let noise: i16 = rng.gen_range(-10..=10);
        Rgb(bg.map(|c| (i16::from(c) + noise).clamp(0, 255) as u8))
    });
    let count = rng.gen_range(1..=2u32);
    let band = h as f32 / count as f32;
    let mut lines = Vec::new();
    for n in 0..count {
        let text = sign_text(rng);
        let size = rng.gen_range(26.0..44.0f32).min(band * 0.8);
        let scaled = font.as_scaled(PxScale::from(size));
        let width: f32 = text
            .chars()
            .map(|c| scaled.h_advance(font.glyph_id(c)))
            .sum();
        let x = rng.gen_range(6.0..(w as f32 - width - 6.0).max(7.0));
        let top = band * n as f32 + (band - (scaled.ascent() - scaled.descent())) / 2.0;
        let mut caret = point(x, top + scaled.ascent());
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for c in text.chars() {
            let id = font.glyph_id(c);
            let glyph = id.with_scale_and_position(size, caret);
            caret.x += scaled.h_advance(id);
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let b = outline.px_bounds();
            (x0, y0, x1, y1) = (
                x0.min(b.min.x),
                y0.min(b.min.y),
                x1.max(b.max.x),
                y1.max(b.max.y),
            );
            outline.draw(|gx, gy, cover| {
                let (px, py) = (
                    b.min.x as i64 + i64::from(gx),
                    b.min.y as i64 + i64::from(gy),
                );
                if (0..i64::from(w)).contains(&px) && (0..i64::from(h)).contains(&py) {
                    let p = img.get_pixel_mut(px as u32, py as u32);
                    for (v, f) in p.0.iter_mut().zip(fg) {
                        let mixed = f32::from(*v) * (1.0 - cover) + f32::from(f) * cover;
                        *v = mixed.round().clamp(0.0, 255.0) as u8;
                    }
                }
            });
        }
        // A few pixels of margin, as people draw text boxes.
        let clip = |v: f32, max: u32| (v.round().max(0.0) as u32).min(max - 1);
        lines.push((
            text,
            [
                clip(x0 - 3.0, w),
                clip(y0 - 3.0, h),
                clip(x1 + 3.0, w),
                clip(y1 + 3.0, h),
            ],
        ));
    }
    // Half the one-line signs are photographed askew: turned 6-12° about their centre.
    if count == 1 && rng.gen_bool(0.5) {
        let angle =
            rng.gen_range(6.0..12.0f32).to_radians() * if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
        img = rotated(&img, angle, bg);
        for (_, b) in &mut lines {
            *b = rotated_box(*b, angle, (w, h));
        }
    }
    (img, lines)
}

/// `img` turned by `angle` (radians, clockwise on screen) about its centre, bilinear; what
/// comes in from outside is the background colour.
fn rotated(img: &RgbImage, angle: f32, bg: [u8; 3]) -> RgbImage {
    let (w, h) = img.dimensions();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (c, s) = (angle.cos(), angle.sin());
    RgbImage::from_fn(w, h, |x, y| {
        // The source of (x, y): the inverse rotation.
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let (sx, sy) = (c * dx + s * dy + cx - 0.5, -s * dx + c * dy + cy - 0.5);
        let at = |px: i64, py: i64| -> [f32; 3] {
            if (0..i64::from(w)).contains(&px) && (0..i64::from(h)).contains(&py) {
                img.get_pixel(px as u32, py as u32).0.map(f32::from)
            } else {
                bg.map(f32::from)
            }
        };
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let mut out = [0u8; 3];
        let (a, b, c2, d) = (
            at(x0, y0),
            at(x0 + 1, y0),
            at(x0, y0 + 1),
            at(x0 + 1, y0 + 1),
        );
        for k in 0..3 {
            let top = a[k] * (1.0 - fx) + b[k] * fx;
            let bottom = c2[k] * (1.0 - fx) + d[k] * fx;
            out[k] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
        }
        Rgb(out)
    })
}

/// The axis-aligned box around a box's corners turned as [`rotated`] turns the image.
fn rotated_box([x0, y0, x1, y1]: [u32; 4], angle: f32, (w, h): (u32, u32)) -> [u32; 4] {
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (c, s) = (angle.cos(), angle.sin());
    let corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)].map(|(x, y)| {
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        (c * dx - s * dy + cx, s * dx + c * dy + cy)
    });
    let clip = |v: f32, max: u32| (v.round().max(0.0) as u32).min(max - 1);
    let (xs, ys) = (corners.map(|p| p.0), corners.map(|p| p.1));
    let min = |v: [f32; 4]| v.into_iter().fold(f32::MAX, f32::min);
    let max = |v: [f32; 4]| v.into_iter().fold(f32::MIN, f32::max);
    [
        clip(min(xs), w),
        clip(min(ys), h),
        clip(max(xs), w),
        clip(max(ys), h),
    ]
}

/// Whether a point (relative to a shape's centre) is inside the shape.
fn inside(shape: &str, dx: f32, dy: f32, r: f32, angle: f32) -> bool {
    match shape {
        "circle" => dx * dx + dy * dy <= r * r,
        "square" => {
            let (c, s) = (angle.cos(), angle.sin());
            let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
            u.abs() <= r * 0.85 && v.abs() <= r * 0.85
        }
        _ => in_triangle(dx, dy, r, angle),
    }
}

/// A shape placed in a scene.
struct Placed {
    shape: &'static str,
    cx: f32,
    cy: f32,
    r: f32,
    angle: f32,
    fg: [u8; 3],
}

/// A noisy background with up to four shapes that barely overlap, and their boxes
/// (`[xmin, ymin, xmax, ymax]` around the drawn pixels).
fn draw_scene(rng: &mut StdRng) -> (RgbImage, Vec<(&'static str, [u32; 4])>) {
    let bg = random_colour(rng);
    let side = SCENE_SIDE as f32;
    let mut placed: Vec<Placed> = Vec::new();
    for _ in 0..rng.gen_range(1..=4) {
        for _attempt in 0..20 {
            let r = rng.gen_range(14.0..44.0);
            let cx = rng.gen_range(r..side - r);
            let cy = rng.gen_range(r..side - r);
            if placed
                .iter()
                .any(|p| ((p.cx - cx).powi(2) + (p.cy - cy).powi(2)).sqrt() < (p.r + r) * 0.9)
            {
                continue;
            }
            let mut fg = random_colour(rng);
            while distance(bg, fg) < 120.0 {
                fg = random_colour(rng);
            }
            let shape = SHAPES[rng.gen_range(0..SHAPES.len())];
            placed.push(Placed {
                shape,
                cx,
                cy,
                r,
                angle: rng.gen_range(0.0..std::f32::consts::TAU),
                fg,
            });
            break;
        }
    }
    let mut img = RgbImage::new(SCENE_SIDE, SCENE_SIDE);
    let mut extents = vec![[u32::MAX, u32::MAX, 0, 0]; placed.len()];
    for (x, y, px) in img.enumerate_pixels_mut() {
        let mut colour = bg;
        for (k, p) in placed.iter().enumerate() {
            if inside(
                p.shape,
                x as f32 + 0.5 - p.cx,
                y as f32 + 0.5 - p.cy,
                p.r,
                p.angle,
            ) {
                colour = p.fg;
                let e = &mut extents[k];
                *e = [e[0].min(x), e[1].min(y), e[2].max(x + 1), e[3].max(y + 1)];
            }
        }
        let noise: i16 = rng.gen_range(-12..=12);
        *px = Rgb(colour.map(|c| (i16::from(c) + noise).clamp(0, 255) as u8));
    }
    let boxes = placed
        .iter()
        .zip(extents)
        .filter(|(_, e)| e[2] > e[0])
        .map(|(p, e)| (p.shape, e))
        .collect();
    (img, boxes)
}

fn in_triangle(x: f32, y: f32, r: f32, angle: f32) -> bool {
    let corner = |k: f32| {
        let a = angle + k * std::f32::consts::TAU / 3.0;
        (r * a.cos(), r * a.sin())
    };
    let (a, b, c) = (corner(0.0), corner(1.0), corner(2.0));
    let side = |p: (f32, f32), q: (f32, f32)| (q.0 - p.0) * (y - p.1) - (q.1 - p.1) * (x - p.0);
    let (d1, d2, d3) = (side(a, b), side(b, c), side(c, a));
    (d1 >= 0.0 && d2 >= 0.0 && d3 >= 0.0) || (d1 <= 0.0 && d2 <= 0.0 && d3 <= 0.0)
}

fn random_colour(rng: &mut StdRng) -> [u8; 3] {
    [rng.r#gen(), rng.r#gen(), rng.r#gen()]
}

fn distance(a: [u8; 3], b: [u8; 3]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(&x, y)| (f32::from(x) - f32::from(y)).powi(2))
        .sum::<f32>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_have_boxes_around_their_text() {
        let dir = tempfile::tempdir().unwrap();
        write_signs(dir.path(), 3).unwrap();
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 2 * SIGNS);
        for i in 0..SIGNS {
            let xml = std::fs::read_to_string(dir.path().join(format!("sign-{i:03}.xml"))).unwrap();
            let img = image::open(dir.path().join(format!("sign-{i:03}.png")))
                .unwrap()
                .to_rgb8();
            let corner = *img.get_pixel(0, 0);
            let objects = xml.matches("<object>").count();
            assert!((1..=2).contains(&objects), "{xml}");
            for obj in xml.split("<object>").skip(1) {
                let field = |k: &str| -> u32 {
                    obj.split(&format!("<{k}>"))
                        .nth(1)
                        .unwrap()
                        .split('<')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap()
                };
                let (x0, y0, x1, y1) = (field("xmin"), field("ymin"), field("xmax"), field("ymax"));
                assert!(x0 < x1 && y0 < y1 && x1 < SIGN_SIZE.0 && y1 < SIGN_SIZE.1);
                // Text pixels (far from the background's colour) lie inside the box, and the
                // box is no wider than the text needs.
                let ink = |x: u32, y: u32| {
                    let p = img.get_pixel(x, y).0;
                    (0..3)
                        .map(|k| (i32::from(p[k]) - i32::from(corner.0[k])).abs())
                        .sum::<i32>()
                        > 120
                };
                let inked = (x0..=x1)
                    .flat_map(|x| (y0..=y1).map(move |y| (x, y)))
                    .filter(|&(x, y)| ink(x, y))
                    .count();
                assert!(inked > 30, "text inside the box of {obj}");
                let text = obj
                    .split("<name>")
                    .nth(1)
                    .unwrap()
                    .split('<')
                    .next()
                    .unwrap();
                assert!(
                    text.len() >= 3
                        && text
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
                );
                assert!((x1 - x0) as usize <= text.len() * 44, "{text}: {x0}..{x1}");
            }
        }
        // Seeded: the same seed draws the same signs.
        let again = tempfile::tempdir().unwrap();
        write_signs(again.path(), 3).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("sign-007.png")).unwrap(),
            std::fs::read(again.path().join("sign-007.png")).unwrap()
        );
    }

    #[test]
    fn shapes_are_seeded_and_complete() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write_shapes(a.path(), 7).unwrap();
        write_shapes(b.path(), 7).unwrap();
        for shape in SHAPES {
            let n = std::fs::read_dir(a.path().join(shape)).unwrap().count();
            assert_eq!(n, PER_SHAPE);
        }
        let f = "triangle/triangle-005.png";
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap()
        );
    }

    #[test]
    fn scenes_have_boxes_around_their_shapes() {
        let dir = tempfile::tempdir().unwrap();
        write_scenes(dir.path(), 3).unwrap();
        let xml = std::fs::read_to_string(dir.path().join("scene-007.xml")).unwrap();
        assert!(xml.contains("<object><name>"), "{xml}");
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..10 {
            let (img, boxes) = draw_scene(&mut rng);
            assert!(!boxes.is_empty());
            for (_, [x0, y0, x1, y1]) in boxes {
                assert!(x0 < x1 && y0 < y1 && x1 <= SCENE_SIDE && y1 <= SCENE_SIDE);
                // At least 14 px radius: boxes are never tiny.
                assert!(x1 - x0 >= 10 && y1 - y0 >= 10);
            }
            assert_eq!(img.width(), SCENE_SIDE);
        }
    }

    #[test]
    fn shapes_cover_a_sensible_share_of_the_image() {
        let mut rng = StdRng::seed_from_u64(1);
        for shape in SHAPES {
            let img = draw(shape, &mut rng);
            assert_eq!(img.dimensions(), (SIDE, SIDE));
        }
        // A triangle of circumradius 1 has area 1.299; sample the unit square grid.
        let n = 400;
        let inside = (0..n * n)
            .filter(|i| {
                let x = (i % n) as f32 / n as f32 * 2.0 - 1.0;
                let y = (i / n) as f32 / n as f32 * 2.0 - 1.0;
                in_triangle(x, y, 1.0, 0.3)
            })
            .count() as f32;
        let area = inside / (n * n) as f32 * 4.0;
        assert!((area - 1.299).abs() < 0.05, "{area}");
    }
}
