//! One loaded model serving requests: a bounded queue in front of `replicas` threads, each
//! with its own handle on the model, each taking what is queued (up to a batch) and running
//! it in one forward pass. A full queue refuses at once; memory is bounded by the queue.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use burn::prelude::*;
use shared::model::FusedEfficientNetLite;
use shared::preprocess::softmax;
use tokio::sync::oneshot;

/// Requests waiting per replica before new ones are refused.
pub const QUEUE_PER_REPLICA: usize = 16;
/// Images one forward pass takes at most.
pub const MAX_BATCH: usize = 8;

/// A normalised `3×side×side` image and where its class probabilities go.
struct Job {
    input: Vec<f32>,
    reply: oneshot::Sender<Result<Vec<f32>, String>>,
}

pub struct Engine {
    tx: SyncSender<Job>,
    pub side: usize,
}

/// The queue is full: the service is at capacity.
#[derive(Debug)]
pub struct Busy;

impl Engine {
    /// Starts the replicas; they end when the engine is dropped and the queue is drained.
    pub fn start(
        model: FusedEfficientNetLite,
        side: usize,
        replicas: usize,
        device: Device,
    ) -> Self {
        let replicas = replicas.max(1);
        let (tx, rx) = sync_channel::<Job>(QUEUE_PER_REPLICA * replicas);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..replicas {
            let model = model.clone();
            let rx = rx.clone();
            let device = device.clone();
            std::thread::Builder::new()
                .name("predict".into())
                .spawn(move || replica(&model, &rx, side, &device))
                .expect("spawning a predict thread");
        }
        Self { tx, side }
    }

    /// Queues an image; `Busy` at once when the queue is full.
    pub fn submit(
        &self,
        input: Vec<f32>,
    ) -> Result<oneshot::Receiver<Result<Vec<f32>, String>>, Busy> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { input, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

fn replica(model: &FusedEfficientNetLite, rx: &Mutex<Receiver<Job>>, side: usize, device: &Device) {
    loop {
        let batch = {
            let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Ok(first) = rx.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            batch
        };
        let n = batch.len();
        let mut input = Vec::with_capacity(n * 3 * side * side);
        for j in &batch {
            input.extend_from_slice(&j.input);
        }
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let x = Tensor::<4>::from_data(TensorData::new(input, [n, 3, side, side]), device);
            model
                .forward(x)
                .into_data()
                .try_into_vec_as::<f32>()
                .map_err(|e| format!("{e:?}"))
        }));
        match run {
            Ok(Ok(logits)) => {
                let k = logits.len() / n;
                for (j, row) in batch.into_iter().zip(logits.chunks(k)) {
                    let _ = j.reply.send(Ok(softmax(row)));
                }
            }
            Ok(Err(e)) => batch.into_iter().for_each(|j| {
                let _ = j.reply.send(Err(e.clone()));
            }),
            Err(_) => batch.into_iter().for_each(|j| {
                let _ = j.reply.send(Err("inference panicked".into()));
            }),
        }
    }
}
