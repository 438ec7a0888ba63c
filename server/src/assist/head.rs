//! The small model behind label suggestions: multinomial logistic regression on backbone
//! embeddings (centred on the dataset's mean, L2-normalised), fitted by full-batch
//! Nesterov-accelerated gradient descent with class-balanced weights and an L2 penalty, in
//! well under a second for a few hundred images; and confident-learning-style ranking of
//! labelled images whose label a cross-validated fit disagrees with.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

/// L2 penalty on the weights (per mean example loss).
const L2: f32 = 1e-3;
/// Gradient steps of one fit.
const STEPS: usize = 300;

/// Embeddings centred on their mean and scaled to unit length, so one step size suits every
/// dataset (the loss's gradient is then 1/2-Lipschitz in the weights).
pub fn prepare(vectors: &[&[f32]]) -> Vec<Vec<f32>> {
    let Some(d) = vectors.first().map(|v| v.len()) else {
        return Vec::new();
    };
    let mut mean = vec![0.0f64; d];
    for v in vectors {
        for (m, &x) in mean.iter_mut().zip(v.iter()) {
            *m += f64::from(x);
        }
    }
    let n = vectors.len() as f64;
    vectors
        .iter()
        .map(|v| {
            let mut c: Vec<f32> = v
                .iter()
                .zip(&mean)
                .map(|(&x, &m)| x - (m / n) as f32)
                .collect();
            let norm = c.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            c.iter_mut().for_each(|x| *x /= norm);
            c
        })
        .collect()
}

/// A fitted softmax classifier over prepared embeddings.
pub struct Head {
    classes: usize,
    dim: usize,
    /// `classes × dim`, row-major.
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Head {
    /// Fits on `x` (prepared embeddings) with class indices `y` in `0..classes`.
    pub fn fit(x: &[&[f32]], y: &[usize], classes: usize) -> Head {
        let dim = x.first().map_or(0, |v| v.len());
        let mut head = Head {
            classes,
            dim,
            w: vec![0.0; classes * dim],
            b: vec![0.0; classes],
        };
        if x.is_empty() || classes == 0 {
            return head;
        }
        // Each class weighs as much as any other, however many labels it has so far.
        let mut counts = vec![0usize; classes];
        y.iter().for_each(|&c| counts[c] += 1);
        let weight: Vec<f32> = counts
            .iter()
            .map(|&c| x.len() as f32 / (classes as f32 * c.max(1) as f32))
            .collect();
        let step = 1.0 / (0.5 + L2);
        let (mut prev_w, mut prev_b) = (head.w.clone(), head.b.clone());
        let mut look = head.w.clone();
        let mut look_b = head.b.clone();
        let mut gw = vec![0.0f32; classes * dim];
        let mut gb = vec![0.0f32; classes];
        let mut p = vec![0.0f32; classes];
        let inv_n = 1.0 / x.len() as f32;
        for t in 0..STEPS {
            gw.iter_mut().for_each(|g| *g = 0.0);
            gb.iter_mut().for_each(|g| *g = 0.0);
            for (xi, &yi) in x.iter().zip(y) {
                logits(&look, &look_b, dim, xi, &mut p);
                softmax_in_place(&mut p);
                p[yi] -= 1.0;
                let k = weight[yi] * inv_n;
                for (c, &pc) in p.iter().enumerate() {
                    let g = pc * k;
                    gb[c] += g;
                    for (gwj, &xj) in gw[c * dim..(c + 1) * dim].iter_mut().zip(xi.iter()) {
                        *gwj += g * xj;
                    }
                }
            }
            // Nesterov: step from the look-ahead point, then look ahead again.
            let momentum = t as f32 / (t as f32 + 3.0);
            for j in 0..head.w.len() {
                let next = look[j] - step * (gw[j] + L2 * look[j]);
                look[j] = next + momentum * (next - prev_w[j]);
                prev_w[j] = next;
            }
            for c in 0..classes {
                let next = look_b[c] - step * gb[c];
                look_b[c] = next + momentum * (next - prev_b[c]);
                prev_b[c] = next;
            }
        }
        head.w = prev_w;
        head.b = prev_b;
        head
    }

    /// Class probabilities of one prepared embedding.
    pub fn probs(&self, x: &[f32]) -> Vec<f32> {
        let mut p = vec![0.0; self.classes];
        logits(&self.w, &self.b, self.dim, x, &mut p);
        softmax_in_place(&mut p);
        p
    }
}

fn logits(w: &[f32], b: &[f32], dim: usize, x: &[f32], out: &mut [f32]) {
    for (c, o) in out.iter_mut().enumerate() {
        *o = b[c]
            + w[c * dim..(c + 1) * dim]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum::<f32>();
    }
}

fn softmax_in_place(p: &mut [f32]) {
    let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in p.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    p.iter_mut().for_each(|v| *v /= sum);
}

/// Each labelled example's class probabilities from a fit that did not see it: `folds`-fold
/// cross-validation, examples dealt to folds per class after a seeded shuffle.
pub fn out_of_fold(x: &[&[f32]], y: &[usize], classes: usize, folds: usize) -> Vec<Vec<f32>> {
    let mut fold_of = vec![0usize; x.len()];
    let mut rng = StdRng::seed_from_u64(7);
    for c in 0..classes {
        let mut members: Vec<usize> = (0..x.len()).filter(|&i| y[i] == c).collect();
        members.shuffle(&mut rng);
        for (k, i) in members.into_iter().enumerate() {
            fold_of[i] = k % folds;
        }
    }
    // The folds' fits are independent: one per core at a time.
    let per_fold: Vec<Vec<(usize, Vec<f32>)>> = (0..folds)
        .into_par_iter()
        .map(|f| {
            let (train, test): (Vec<usize>, Vec<usize>) =
                (0..x.len()).partition(|&i| fold_of[i] != f);
            if test.is_empty() {
                return Vec::new();
            }
            let tx: Vec<&[f32]> = train.iter().map(|&i| x[i]).collect();
            let ty: Vec<usize> = train.iter().map(|&i| y[i]).collect();
            let head = Head::fit(&tx, &ty, classes);
            test.into_iter().map(|i| (i, head.probs(x[i]))).collect()
        })
        .collect();
    let mut out = vec![Vec::new(); x.len()];
    for (i, p) in per_fold.into_iter().flatten() {
        out[i] = p;
    }
    out
}

/// Labelled examples whose out-of-fold prediction is another class, most doubtful first
/// (lowest probability of the given label): `(index, suggested class, probability of the
/// given label)`.
pub fn doubtful(oof: &[Vec<f32>], y: &[usize]) -> Vec<(usize, usize, f32)> {
    let mut out: Vec<(usize, usize, f32)> = oof
        .iter()
        .zip(y)
        .enumerate()
        .filter_map(|(i, (p, &given))| {
            let best = argmax(p)?;
            (best != given).then(|| (i, best, p[given]))
        })
        .collect();
    out.sort_by(|a, b| a.2.total_cmp(&b.2));
    out
}

pub fn argmax(p: &[f32]) -> Option<usize> {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Three clusters in 64 dimensions, with noise.
    fn clusters(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..3)
            .map(|_| (0..64).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % 3;
            x.push(
                centres[c]
                    .iter()
                    .map(|v| v + rng.gen_range(-0.6..0.6))
                    .collect(),
            );
            y.push(c);
        }
        (x, y)
    }

    #[test]
    fn a_fit_on_few_labels_classifies_the_rest() {
        let (raw, y) = clusters(300, 1);
        let refs: Vec<&[f32]> = raw.iter().map(Vec::as_slice).collect();
        let x = prepare(&refs);
        let xs: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
        // 5 labels per class.
        let head = Head::fit(&xs[..15], &y[..15], 3);
        let right = (15..300)
            .filter(|&i| argmax(&head.probs(xs[i])) == Some(y[i]))
            .count();
        assert!(right as f64 / 285.0 > 0.95, "{right} of 285");
        let p = head.probs(xs[20]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn flipped_labels_rank_first_among_the_doubtful() {
        let (raw, mut y) = clusters(150, 2);
        let refs: Vec<&[f32]> = raw.iter().map(Vec::as_slice).collect();
        let x = prepare(&refs);
        let xs: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
        let flipped = [3, 40, 77, 101, 140];
        for &i in &flipped {
            y[i] = (y[i] + 1) % 3;
        }
        let oof = out_of_fold(&xs, &y, 3, 5);
        let found: Vec<usize> = doubtful(&oof, &y).iter().take(5).map(|d| d.0).collect();
        let mut found_sorted = found.clone();
        found_sorted.sort_unstable();
        assert_eq!(found_sorted, flipped, "{found:?}");
    }
}
