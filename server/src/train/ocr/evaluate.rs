//! End-to-end OCR evaluation on validation images: the reader finds and reads every line,
//! and its lines are matched to the true ones one to one by box IoU ≥ 0.5 (best IoU first).
//!
//! - **exact match**: true lines whose matched line's text equals the truth, compared after
//!   [`shared::ocr::normalise_text`] (case folded; spaces and punctuation dropped), over all
//!   true lines;
//! - **CER**: the edit distance between each true text and its matched line's text (the
//!   whole true text when nothing matched), summed, over the true texts' characters;
//! - **detection** precision, recall and H-mean of the boxes alone.

use image::RgbImage;
use shared::model::ocr::{Line, OcrReader};
use shared::ocr::{self, Quad};

/// The figures of one evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    pub exact_match: f64,
    pub cer: f64,
    pub precision: f64,
    pub recall: f64,
    pub hmean: f64,
}

/// A validation image's true lines and what the reader made of it.
#[derive(Debug, Clone)]
pub struct PageResult {
    pub truth: Vec<(Quad, String)>,
    pub read: Vec<Line>,
    /// For each true line, the index of its matched line in `read`.
    pub matched: Vec<Option<usize>>,
}

/// Matches predicted lines to true ones (IoU ≥ 0.5, one to one, best pairs first).
pub fn match_lines(truth: &[(Quad, String)], read: &[Line]) -> Vec<Option<usize>> {
    let truth: Vec<Quad> = truth.iter().map(|(q, _)| *q).collect();
    let found: Vec<Quad> = read.iter().map(|l| l.quad).collect();
    match_quads(&truth, &found)
}

/// For each true box, the index of the found box matched to it (IoU ≥ 0.5, one to one, best
/// pairs first).
pub fn match_quads(truth: &[Quad], found: &[Quad]) -> Vec<Option<usize>> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (t, q) in truth.iter().enumerate() {
        for (p, f) in found.iter().enumerate() {
            let iou = ocr::quad_iou(q, f);
            if iou >= 0.5 {
                pairs.push((iou, t, p));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut matched = vec![None; truth.len()];
    let mut used = vec![false; found.len()];
    for (_, t, p) in pairs {
        if matched[t].is_none() && !used[p] {
            matched[t] = Some(p);
            used[p] = true;
        }
    }
    matched
}

/// Reads each page and matches its lines.
pub fn read_pages(
    reader: &OcrReader,
    pages: &[(&RgbImage, Vec<(Quad, String)>)],
) -> Vec<PageResult> {
    pages
        .iter()
        .map(|(img, truth)| {
            let read = reader.read_page(img);
            let matched = match_lines(truth, &read);
            PageResult {
                truth: truth.clone(),
                read,
                matched,
            }
        })
        .collect()
}

/// The scores of read pages.
pub fn scores(pages: &[PageResult]) -> Scores {
    let (mut lines, mut exact, mut edits, mut chars) = (0usize, 0usize, 0usize, 0usize);
    let (mut predicted, mut found) = (0usize, 0usize);
    for p in pages {
        predicted += p.read.len();
        for ((_, text), m) in p.truth.iter().zip(&p.matched) {
            let truth = ocr::normalise_text(text);
            let got = m.map_or(String::new(), |i| ocr::normalise_text(&p.read[i].text));
            lines += 1;
            found += usize::from(m.is_some());
            exact += usize::from(got == truth);
            edits += ocr::levenshtein(&got, &truth);
            chars += truth.chars().count();
        }
    }
    let (precision, recall, hmean) = detection_scores(found, predicted, lines);
    Scores {
        exact_match: ratio(exact, lines),
        cer: ratio(edits, chars),
        precision,
        recall,
        hmean,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Detection precision, recall and H-mean of `found` matched boxes among `predicted` ones,
/// for `truths` true boxes.
pub fn detection_scores(found: usize, predicted: usize, truths: usize) -> (f64, f64, f64) {
    let (precision, recall) = (ratio(found, predicted), ratio(found, truths));
    let hmean = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (precision, recall, hmean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quad(x: f32, y: f32, w: f32, h: f32) -> Quad {
        [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    }

    fn line(q: Quad, text: &str) -> Line {
        Line {
            quad: q,
            text: text.into(),
            conf: 0.9,
        }
    }

    /// Hand-computed: two true lines; one read right (with a dash the comparison ignores),
    /// one read with one wrong character, one false detection, one true line on a second
    /// page missed entirely.
    #[test]
    fn scores_match_hand_computed_values() {
        let page1 = PageResult {
            truth: vec![
                (quad(0.0, 0.0, 100.0, 20.0), "AB12".into()),
                (quad(0.0, 50.0, 100.0, 20.0), "XYZ".into()),
            ],
            read: vec![
                line(quad(2.0, 1.0, 100.0, 20.0), "ab-12"),
                line(quad(0.0, 52.0, 98.0, 20.0), "XYQ"),
                line(quad(300.0, 300.0, 50.0, 20.0), "NOISE"),
            ],
            matched: vec![],
        };
        let page1 = PageResult {
            matched: match_lines(&page1.truth, &page1.read),
            ..page1
        };
        assert_eq!(page1.matched, [Some(0), Some(1)]);
        let page2 = PageResult {
            truth: vec![(quad(0.0, 0.0, 50.0, 10.0), "Q9".into())],
            read: vec![],
            matched: vec![None],
        };
        let s = scores(&[page1, page2]);
        assert!((s.exact_match - 1.0 / 3.0).abs() < 1e-9);
        // Edits: 0 + 1 + 2 over 4 + 3 + 2 characters.
        assert!((s.cer - 3.0 / 9.0).abs() < 1e-9);
        assert!((s.precision - 2.0 / 3.0).abs() < 1e-9);
        assert!((s.recall - 2.0 / 3.0).abs() < 1e-9);
        assert!((s.hmean - 2.0 / 3.0).abs() < 1e-9);
    }
}
