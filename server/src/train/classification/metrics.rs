//! Evaluation of a classifier from its predictions on the validation split (SPEC §1 table):
//! accuracy, precision/recall/F1 per class and macro-averaged, confusion matrix, loss.

use std::collections::BTreeMap;

use shared::train::{ClassMetrics, ClassificationMetrics, Misclassified};

/// One validation image: its id, true class index and predicted probabilities.
pub struct Prediction {
    pub image_id: i64,
    pub truth: usize,
    pub probs: Vec<f32>,
}

/// Cross-entropy of the true class, floored so one certain mistake does not make it infinite.
pub fn nll(probs: &[f32], truth: usize) -> f64 {
    -f64::from(probs[truth].max(1e-7)).ln()
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Macro averages are over classes with validation images (a class absent from the split
/// has no defined recall, and counting it as 0 would punish the model for the split).
pub fn evaluate(labels: &[String], preds: &[Prediction]) -> ClassificationMetrics {
    let n = labels.len();
    let mut cm = vec![vec![0u64; n]; n];
    let mut loss = 0.0;
    let mut misclassified = Vec::new();
    for p in preds {
        let guess = argmax(&p.probs);
        cm[p.truth][guess] += 1;
        loss += nll(&p.probs, p.truth);
        if guess != p.truth {
            misclassified.push(Misclassified {
                image_id: p.image_id,
                truth: labels[p.truth].clone(),
                predicted: labels[guess].clone(),
                confidence: f64::from(p.probs[guess]),
            });
        }
    }
    let total = preds.len() as f64;
    let correct: u64 = (0..n).map(|i| cm[i][i]).sum();
    let mut per_class = BTreeMap::new();
    let (mut sp, mut sr, mut sf, mut present) = (0.0, 0.0, 0.0, 0usize);
    for (i, label) in labels.iter().enumerate() {
        let tp = cm[i][i] as f64;
        let support: u64 = cm[i].iter().sum();
        let predicted: u64 = cm.iter().map(|row| row[i]).sum();
        let precision = if predicted > 0 {
            tp / predicted as f64
        } else {
            0.0
        };
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        if support > 0 {
            present += 1;
            sp += precision;
            sr += recall;
            sf += f1;
        }
        per_class.insert(
            label.clone(),
            ClassMetrics {
                precision,
                recall,
                f1,
                support,
            },
        );
    }
    let macro_avg = |s: f64| if present > 0 { s / present as f64 } else { 0.0 };
    misclassified.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    ClassificationMetrics {
        accuracy: if total > 0.0 {
            correct as f64 / total
        } else {
            0.0
        },
        precision: macro_avg(sp),
        recall: macro_avg(sr),
        f1: macro_avg(sf),
        loss: if total > 0.0 { loss / total } else { 0.0 },
        per_class,
        confusion_matrix: cm,
        model_size: 0,
        validation_images: preds.len() as u64,
        train_images: 0,
        misclassified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: i64, truth: usize, probs: &[f32]) -> Prediction {
        Prediction {
            image_id: id,
            truth,
            probs: probs.to_vec(),
        }
    }

    #[test]
    fn known_confusion_gives_known_figures() {
        let labels = vec!["cat".to_owned(), "dog".to_owned()];
        // cat: 2 right, 1 called dog; dog: 1 right.
        let preds = [
            p(1, 0, &[0.9, 0.1]),
            p(2, 0, &[0.8, 0.2]),
            p(3, 0, &[0.3, 0.7]),
            p(4, 1, &[0.4, 0.6]),
        ];
        let m = evaluate(&labels, &preds);
        assert_eq!(m.confusion_matrix, vec![vec![2, 1], vec![0, 1]]);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        let cat = &m.per_class["cat"];
        let dog = &m.per_class["dog"];
        assert!((cat.precision - 1.0).abs() < 1e-12);
        assert!((cat.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((dog.precision - 0.5).abs() < 1e-12);
        assert!((dog.recall - 1.0).abs() < 1e-12);
        assert!((m.precision - 0.75).abs() < 1e-12);
        assert!((m.f1 - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        let expected_loss = -(0.9f64.ln() + 0.8f64.ln() + 0.3f64.ln() + 0.6f64.ln()) / 4.0;
        assert!((m.loss - expected_loss).abs() < 1e-6);
        assert_eq!(m.misclassified.len(), 1);
        assert_eq!(m.misclassified[0].image_id, 3);
        assert_eq!(m.misclassified[0].predicted, "dog");
    }
}
