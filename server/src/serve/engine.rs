//! One loaded model serving requests: a bounded queue in front of `replicas` threads, each
//! with its own handle on the model, each taking what is queued (up to a batch) and running
//! it in one pass of its [`Worker`]: for fixed-size networks one forward pass of the
//! [`NativeNet`] executor (whose matrix products spread over all cores), for OCR a page at
//! a time through the reader. A request takes its place ([`Ticket`]) before its image is decoded, so a full
//! engine refuses at once without spending CPU on work it would throw away; memory is
//! bounded by the places and by each replica's reused activation buffers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use shared::preprocess::softmax;

use shared::exec::{NativeNet, Scratch};
use tokio::sync::oneshot;

/// Images admitted per replica (being decoded, queued or in a forward pass) before new ones
/// are refused: at concurrency 32 on one replica all are served, beyond that the excess is
/// refused at once.
pub const QUEUE_PER_REPLICA: usize = 32;
/// Images one forward pass takes at most.
pub const MAX_BATCH: usize = 8;

/// What a replica runs: a batch of normalised `3×side×side` images in, one output per
/// image out (a classifier's class probabilities, a detector's head output).
pub trait Network: Send + Sync + 'static {
    fn run(&self, input: &[f32], n: usize, side: usize, scratch: &mut Scratch) -> Vec<Vec<f32>>;
}

/// The classifier: the serving executor's logits, as probabilities.
impl Network for NativeNet {
    fn run(&self, input: &[f32], n: usize, side: usize, scratch: &mut Scratch) -> Vec<Vec<f32>> {
        let logits = self.forward(input, n, side, scratch);
        let k = logits.len() / n.max(1);
        logits.chunks(k.max(1)).map(softmax).collect()
    }
}

/// What a replica runs on what it takes from the queue: one output per input, in order.
pub trait Worker: Send + Sync + 'static {
    type Input: Send + 'static;
    type Output: Send + 'static;
    /// Inputs one pass takes at most.
    const MAX_BATCH: usize;
    fn run(&self, batch: Vec<Self::Input>, scratch: &mut Scratch) -> Vec<Self::Output>;
}

/// A fixed-size network as a worker: its inputs are normalised `3×side×side` images,
/// batched into one forward pass.
pub struct Square<N> {
    pub net: N,
    pub side: usize,
}

impl<N: Network> Worker for Square<N> {
    type Input = Vec<f32>;
    type Output = Vec<f32>;
    const MAX_BATCH: usize = MAX_BATCH;

    fn run(&self, batch: Vec<Vec<f32>>, scratch: &mut Scratch) -> Vec<Vec<f32>> {
        let n = batch.len();
        let mut input = Vec::with_capacity(n * 3 * self.side * self.side);
        for x in &batch {
            input.extend_from_slice(x);
        }
        self.net.run(&input, n, self.side, scratch)
    }
}

/// An input and where its output goes.
struct Job<I, O> {
    input: I,
    reply: oneshot::Sender<Result<O, String>>,
}

/// A [`Square`] network's engine.
pub type ImageEngine = Engine<Vec<f32>, Vec<f32>>;

pub struct Engine<I, O> {
    tx: SyncSender<Job<I, O>>,
    admitted: Arc<AtomicUsize>,
    capacity: usize,
}

/// The queue is full: the service is at capacity.
#[derive(Debug)]
pub struct Busy;

/// One image's place in an engine, from before decoding until its answer; dropping it frees
/// the place.
pub struct Ticket {
    admitted: Arc<AtomicUsize>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<I: Send + 'static, O: Send + 'static> Engine<I, O> {
    /// Starts the replicas; they end when the engine is dropped and the queue is drained.
    pub fn start<W: Worker<Input = I, Output = O>>(worker: W, replicas: usize) -> Self {
        let model = Arc::new(worker);
        let replicas = replicas.max(1);
        let capacity = QUEUE_PER_REPLICA * replicas;
        // Every queued job holds a ticket, so the channel never fills before the tickets run
        // out; its bound is a second guard.
        let (tx, rx) = sync_channel::<Job<I, O>>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..replicas {
            let model = model.clone();
            let rx = rx.clone();
            std::thread::Builder::new()
                .name("predict".into())
                .spawn(move || replica(model.as_ref(), &rx))
                .expect("spawning a predict thread");
        }
        Self {
            tx,
            admitted: Arc::default(),
            capacity,
        }
    }

    /// Takes a place for one image; `Busy` at once when all are taken.
    pub fn admit(&self) -> Result<Ticket, Busy> {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .map(|_| Ticket {
                admitted: self.admitted.clone(),
            })
            .map_err(|_| Busy)
    }

    /// Queues an image (whose [`Ticket`] the caller holds until the answer); `Busy` at once
    /// when the queue is full.
    pub fn submit(&self, input: I) -> Result<oneshot::Receiver<Result<O, String>>, Busy> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { input, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

fn replica<W: Worker>(model: &W, rx: &Mutex<Receiver<Job<W::Input, W::Output>>>) {
    let mut scratch = Scratch::default();
    loop {
        let batch = {
            let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Ok(first) = rx.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < W::MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            batch
        };
        let (inputs, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|j| (j.input, j.reply)).unzip();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            model.run(inputs, &mut scratch)
        }));
        match run {
            Ok(outputs) => {
                for (reply, row) in replies.into_iter().zip(outputs) {
                    let _ = reply.send(Ok(row));
                }
            }
            Err(_) => replies.into_iter().for_each(|reply| {
                let _ = reply.send(Err("inference panicked".into()));
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::Device;
    use shared::model::{EfficientNetLite, FusedEfficientNetLite};

    #[test]
    fn a_full_engine_refuses_until_a_place_frees() {
        let device = Device::flex();
        let net = NativeNet::new(&FusedEfficientNetLite::new(&EfficientNetLite::lite0(
            2, &device,
        )));
        let engine = Engine::start(Square { net, side: 32 }, 1);
        let mut tickets: Vec<Ticket> = (0..QUEUE_PER_REPLICA)
            .map(|_| engine.admit().expect("a free place"))
            .collect();
        assert!(engine.admit().is_err(), "all places taken");
        tickets.pop();
        let ticket = engine.admit().expect("the freed place");
        // An admitted image is answered.
        let rx = engine.submit(vec![0.0; 3 * 32 * 32]).expect("queued");
        let probs = rx
            .blocking_recv()
            .expect("an answer")
            .expect("probabilities");
        assert_eq!(probs.len(), 2);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        drop(ticket);
    }
}
