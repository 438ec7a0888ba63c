//! Demo templates (`POST /api/instances {"template": "shapes"}`): a classification
//! instance with a generated, seeded dataset, so a new user can train at once. No
//! third-party images: every picture is drawn here.

use std::path::Path;

use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const TEMPLATES: &[&str] = &["shapes"];
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
        let inside = match shape {
            "circle" => dx * dx + dy * dy <= r * r,
            "square" => {
                // Rotated square of half-side r * 0.85.
                let (c, s) = (angle.cos(), angle.sin());
                let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
                u.abs() <= r * 0.85 && v.abs() <= r * 0.85
            }
            _ => in_triangle(dx, dy, r, angle),
        };
        let base = if inside { fg } else { bg };
        let noise: i16 = rng.gen_range(-12..=12);
        *px = Rgb(base.map(|c| (i16::from(c) + noise).clamp(0, 255) as u8));
    }
    img
}

/// Equilateral triangle with circumradius `r`, rotated by `angle`, centred at the origin.
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
