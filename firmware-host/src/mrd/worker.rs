//! The inference thread: it owns the models (an ONNX Runtime session is `Send` but runs with
//! `&mut self`), takes jobs from every connection through one bounded queue, batches slices
//! of one model and size that are already waiting, and answers each job on its own channel.
//!
//! Keeping inference off the async reactor means a slow model never stalls reading or
//! writing on other connections, and the bounded queue is the daemon's back-pressure: a
//! connection whose image cannot be queued stops reading its socket.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossdenoise_image::ModelKind;
use crossdenoise_image::growing_series::GrowingSeries;
use crossdenoise_image::noise_map::Stated;
use crossdenoise_runtime::{Arrival, Denoiser};
use ndarray::{Array2, ArrayView2};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

pub type Planes = Vec<Array2<f32>>;
pub type Answer = Result<Planes, JobError>;

/// Why a job came back without denoised planes; the connection sends the original image
/// back and logs this as the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// The engine refused or failed (ONNX Runtime's message).
    #[error("{0}")]
    Model(String),
    #[error("the model panicked: {0}")]
    Panicked(String),
    #[error("the model returned {got} slices for {sent}")]
    WrongCount { got: usize, sent: usize },
    #[error("{guides} guide planes for {planes} image planes: the partner image differs")]
    GuideMismatch { guides: usize, planes: usize },
    #[error("no model with index {0}")]
    NoModel(usize),
    #[error("no {guide} image of the same slice within pair_wait_s = {wait_s:.1} s")]
    NoPartner { guide: String, wait_s: f64 },
    #[error("no partner image: the connection ended")]
    ConnectionEnded,
}

/// What a model does, as the connections need to know it: which contrast its output shows,
/// which contrast it reads as a guide, and what a derived image says of itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The contrast of the output (e.g. `pd`); empty when the model does not say.
    pub output: String,
    /// A guided model's guide contrast (e.g. `pdfs`).
    pub guide: Option<String>,
    /// Appended to a derived image's description: `denoised`, or `synthesized pd` for the
    /// cross path, whose output shows the other contrast.
    pub label: String,
    /// The coils its slices are served as (1: Rician), which their air is read against.
    pub coils: u32,
}

impl Default for ModelInfo {
    fn default() -> Self {
        ModelInfo {
            output: String::new(),
            guide: None,
            label: "denoised".into(),
            coils: 1,
        }
    }
}

/// Something that denoises a batch of equally sized slices: the ONNX Runtime [`Denoiser`],
/// or a stand-in in tests. A guided engine takes each slice's partner as a guide.
pub trait Engine: Send + 'static {
    fn denoise_batch(&mut self, slices: &[ArrayView2<f32>]) -> Result<Planes, String>;
    fn denoise_guided_batch(
        &mut self,
        _slices: &[ArrayView2<f32>],
        _guides: &[ArrayView2<f32>],
    ) -> Result<Planes, String> {
        Err("this model takes no guide".into())
    }
    fn info(&self) -> ModelInfo {
        ModelInfo::default()
    }
    /// A series pooled as its slices arrive, for an engine that serves noise maps.
    fn growing_series(&self, _capacity: usize) -> Result<Option<GrowingSeries>, String> {
        Ok(None)
    }
    /// Prepares the maps of `slices` (pooled with their series before them) for the next
    /// batch, beside those already prepared.
    fn prepare_arrived(
        &mut self,
        _series: &mut GrowingSeries,
        _slices: &[ArrayView2<f32>],
        _guides: Option<&[ArrayView2<f32>]>,
    ) -> Result<Vec<Arrival>, String> {
        Ok(Vec::new())
    }
    /// Lets go of the maps prepared for the batch before.
    fn forget_series(&mut self) {}
    /// Says what the acquisition of the next batch states (its MRD header's acceleration),
    /// which its noise maps follow over the configuration.
    fn set_stated(&mut self, _stated: Stated) {}
}

impl Engine for Denoiser {
    fn denoise_batch(&mut self, slices: &[ArrayView2<f32>]) -> Result<Planes, String> {
        Denoiser::denoise_batch(self, slices).map_err(|e| e.to_string())
    }

    fn denoise_guided_batch(
        &mut self,
        slices: &[ArrayView2<f32>],
        guides: &[ArrayView2<f32>],
    ) -> Result<Planes, String> {
        Denoiser::denoise_guided_batch(self, slices, guides).map_err(|e| e.to_string())
    }

    fn growing_series(&self, capacity: usize) -> Result<Option<GrowingSeries>, String> {
        Denoiser::growing_series(self, capacity).map_err(|e| e.to_string())
    }

    fn prepare_arrived(
        &mut self,
        series: &mut GrowingSeries,
        slices: &[ArrayView2<f32>],
        guides: Option<&[ArrayView2<f32>]>,
    ) -> Result<Vec<Arrival>, String> {
        Denoiser::prepare_arrived(self, series, slices, guides).map_err(|e| e.to_string())
    }

    fn forget_series(&mut self) {
        Denoiser::forget_series(self)
    }

    fn set_stated(&mut self, stated: Stated) {
        Denoiser::set_stated(self, stated)
    }

    fn info(&self) -> ModelInfo {
        let m = self.metadata();
        ModelInfo {
            output: m.output_contrast().to_string(),
            guide: m.guide.as_ref().map(|g| g.name.clone()),
            label: match m.kind {
                ModelKind::Synthesis => format!("synthesized_{}", m.output_contrast()),
                _ => "denoised".into(),
            },
            coils: self.served_coils(),
        }
    }
}

struct Job {
    /// The connection it came from: jobs are taken from connections in turn.
    connection: u64,
    /// Its connection's series so far, which its noise maps are pooled with.
    series: Arc<Mutex<ConnectionSeries>>,
    /// What its connection's header states of the acquisition: a batch holds one.
    stated: Stated,
    model: usize,
    planes: Planes,
    /// The partner image's planes, one per plane, for a guided model.
    guides: Option<Planes>,
    reply: oneshot::Sender<Answer>,
}

#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    pub batch_size: usize,
    pub batch_wait: Duration,
    pub queue_depth: usize,
    /// Most slices of a connection's series each image's noise map is pooled with, itself
    /// included (1: each image's own map).
    pub noise_pool_slices: usize,
}

/// The slices each model has served on one connection so far, for an engine that serves
/// noise maps: an MRD connection carries one acquisition, and the daemon answers each image
/// as it comes, so each image's map is pooled with the images of its series before it
/// (`GrowingSeries`). `None` for a model served with one sigma per slice.
#[derive(Default)]
pub struct ConnectionSeries {
    by_model: HashMap<usize, Option<GrowingSeries>>,
}

/// The sending side; cheap to clone. Each connection takes its own with
/// [`Worker::for_connection`], so the worker can serve connections in turn.
#[derive(Clone)]
pub struct Worker {
    tx: mpsc::Sender<Job>,
    connection: u64,
    series: Arc<Mutex<ConnectionSeries>>,
    stated: Stated,
    next_connection: Arc<AtomicU64>,
}

impl Worker {
    /// Starts the thread. It ends when every `Worker` clone is dropped and the queue is empty.
    pub fn spawn<E: Engine>(engines: Vec<E>, options: WorkerOptions) -> (Worker, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
        let thread = std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || run(engines, rx, options))
            .expect("spawn the inference thread");
        (
            Worker {
                tx,
                connection: 0,
                series: Arc::default(),
                stated: Stated::NOTHING,
                next_connection: Arc::new(AtomicU64::new(1)),
            },
            thread,
        )
    }

    /// A handle whose jobs the worker treats as one connection's: a client that queues
    /// many slices waits its turn behind another's next slice, not the other way round.
    pub fn for_connection(&self) -> Worker {
        Worker {
            connection: self.next_connection.fetch_add(1, Ordering::Relaxed),
            series: Arc::default(),
            stated: Stated::NOTHING,
            ..self.clone()
        }
    }

    /// Says what this connection's header states of its acquisition, for the jobs queued
    /// from now on.
    pub fn set_stated(&mut self, stated: Stated) {
        self.stated = stated;
    }

    /// Queues `planes` (one image's slices, all one size) for `model`, with the partner
    /// image's planes as guides for a guided model, waiting while the queue is full. `Err`
    /// gives the planes back if the worker is gone.
    pub async fn submit(
        &self,
        model: usize,
        planes: Planes,
        guides: Option<Planes>,
    ) -> Result<oneshot::Receiver<Answer>, Planes> {
        let (reply, answer) = oneshot::channel();
        self.submit_to(model, planes, guides, reply)
            .await
            .map(|()| answer)
    }

    /// [`Worker::submit`] answering on a channel the caller made (an image that waited
    /// for its partner already has its answer's receiver in the connection's queue).
    pub async fn submit_to(
        &self,
        model: usize,
        planes: Planes,
        guides: Option<Planes>,
        reply: oneshot::Sender<Answer>,
    ) -> Result<(), Planes> {
        self.tx
            .send(Job {
                connection: self.connection,
                series: self.series.clone(),
                stated: self.stated,
                model,
                planes,
                guides,
                reply,
            })
            .await
            .map_err(|e| e.0.planes)
    }
}

/// Jobs taken off the channel, queued per connection and served round robin. At most
/// `queue_depth` are held here, so the channel's back-pressure still reaches the sockets.
#[derive(Default)]
struct Queues {
    by_connection: BTreeMap<u64, VecDeque<Job>>,
    /// The connection served last: the next job comes from the first one after it.
    last: u64,
    len: usize,
}

impl Queues {
    fn push(&mut self, job: Job) {
        self.by_connection
            .entry(job.connection)
            .or_default()
            .push_back(job);
        self.len += 1;
    }

    /// The front job of the first connection after the last served (wrapping) that
    /// `matches`.
    fn take(&mut self, matches: impl Fn(&Job) -> bool) -> Option<Job> {
        let after = self.by_connection.range(self.last + 1..).map(|(k, _)| *k);
        let before = self.by_connection.range(..=self.last).map(|(k, _)| *k);
        let key = after
            .chain(before)
            .find(|k| self.by_connection[k].front().is_some_and(&matches))?;
        let queue = self.by_connection.get_mut(&key).expect("found");
        let job = queue.pop_front().expect("non-empty");
        if queue.is_empty() {
            self.by_connection.remove(&key);
        }
        self.last = key;
        self.len -= 1;
        Some(job)
    }

    /// Moves what is waiting on the channel here, up to `cap` held.
    fn fill(&mut self, rx: &mut mpsc::Receiver<Job>, cap: usize) -> bool {
        while self.len < cap {
            match rx.try_recv() {
                Ok(job) => self.push(job),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }
}

fn run<E: Engine>(mut engines: Vec<E>, mut rx: mpsc::Receiver<Job>, options: WorkerOptions) {
    let mut queues = Queues::default();
    let cap = options.queue_depth.max(1);
    loop {
        if queues.len == 0 {
            match rx.blocking_recv() {
                Some(job) => queues.push(job),
                None => return,
            }
        }
        queues.fill(&mut rx, cap);
        let first = queues.take(|_| true).expect("a job is queued");
        let (model, shape, guided, stated) = (
            first.model,
            first.planes.first().map(|p| p.dim()),
            first.guides.is_some(),
            first.stated,
        );
        let mut count = first.planes.len();
        let mut jobs = vec![first];
        let deadline = Instant::now() + options.batch_wait;
        while count < options.batch_size {
            let open = queues.fill(&mut rx, cap);
            let room = options.batch_size - count;
            let next = queues.take(|j| {
                j.model == model
                    && j.stated == stated
                    && j.guides.is_some() == guided
                    && j.planes.first().map(|p| p.dim()) == shape
                    && j.planes.len() <= room
            });
            match next {
                Some(job) => {
                    count += job.planes.len();
                    jobs.push(job);
                }
                None if open && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(100));
                }
                None => break,
            }
        }
        // A job whose connection stopped waiting (timeout, client gone) is not computed.
        jobs.retain(|j| !j.reply.is_closed());
        match engines.get_mut(model) {
            Some(engine) => {
                engine.set_stated(stated);
                prepare_maps(engine, model, &jobs, options.noise_pool_slices);
                run_jobs(engine, jobs, options.batch_size);
                engine.forget_series();
            }
            None => {
                for job in jobs {
                    let _ = job.reply.send(Err(JobError::NoModel(model)));
                }
            }
        }
    }
}

/// Adds each job's slices to its connection's series for `model` and prepares their noise
/// maps, pooled with the slices before them. A map that cannot be pooled is left to the
/// engine, which then estimates each slice's own, as without a series.
fn prepare_maps<E: Engine>(engine: &mut E, model: usize, jobs: &[Job], capacity: usize) {
    if capacity <= 1 {
        return;
    }
    for job in jobs {
        let mut table = job.series.lock().unwrap_or_else(|e| e.into_inner());
        let series = match table.by_model.entry(model) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(engine.growing_series(capacity).unwrap_or_else(|error| {
                    warn!(connection = job.connection, %error, "noise maps not pooled over the series");
                    None
                }))
            }
        };
        let Some(series) = series.as_mut() else {
            continue;
        };
        let views: Vec<_> = job.planes.iter().map(|p| p.view()).collect();
        let guides: Option<Vec<_>> = job
            .guides
            .as_ref()
            .map(|g| g.iter().map(|p| p.view()).collect());
        let prepared = std::panic::catch_unwind(AssertUnwindSafe(|| {
            engine.prepare_arrived(series, &views, guides.as_deref())
        }))
        .unwrap_or_else(|_| Err("the noise map panicked".into()));
        match prepared {
            Ok(arrivals) => {
                for arrival in arrivals {
                    if let Some(reason) = arrival.restarted {
                        warn!(connection = job.connection, %reason, "an image is not of the series before it on its connection: its noise map starts a new series");
                    }
                    if let Some(reason) = arrival.apart {
                        warn!(connection = job.connection, %reason, pooled = arrival.pooled, "an image's noise map is set apart from its series' pool");
                    }
                }
            }
            Err(error) => {
                warn!(connection = job.connection, %error, "noise map not pooled over the series: each slice's own")
            }
        }
    }
}

/// Runs the jobs as one batch (in chunks of `batch_size`); if that fails, runs each job on
/// its own so one bad image cannot fail its neighbours.
fn run_jobs<E: Engine>(engine: &mut E, jobs: Vec<Job>, batch_size: usize) {
    if jobs.len() > 1 {
        let all: Vec<ArrayView2<f32>> = jobs
            .iter()
            .flat_map(|j| j.planes.iter().map(|p| p.view()))
            .collect();
        let guides: Option<Vec<ArrayView2<f32>>> = jobs
            .iter()
            .map(|j| j.guides.as_ref().map(|g| g.iter().map(|p| p.view())))
            .collect::<Option<Vec<_>>>()
            .map(|g| g.into_iter().flatten().collect());
        if let Ok(mut out) = denoise_chunked(engine, &all, guides.as_deref(), batch_size) {
            for job in jobs {
                let rest = out.split_off(job.planes.len());
                let mine = std::mem::replace(&mut out, rest);
                let _ = job.reply.send(Ok(mine));
            }
            return;
        }
    }
    for job in jobs {
        let views: Vec<_> = job.planes.iter().map(|p| p.view()).collect();
        let guides: Option<Vec<_>> = job
            .guides
            .as_ref()
            .map(|g| g.iter().map(|p| p.view()).collect());
        let _ = job.reply.send(denoise_chunked(
            engine,
            &views,
            guides.as_deref(),
            batch_size,
        ));
    }
}

fn denoise_chunked<E: Engine>(
    engine: &mut E,
    slices: &[ArrayView2<f32>],
    guides: Option<&[ArrayView2<f32>]>,
    batch_size: usize,
) -> Answer {
    if let Some(g) = guides
        && g.len() != slices.len()
    {
        return Err(JobError::GuideMismatch {
            guides: g.len(),
            planes: slices.len(),
        });
    }
    let mut out = Vec::with_capacity(slices.len());
    let size = batch_size.max(1);
    for (k, chunk) in slices.chunks(size).enumerate() {
        let run = || match guides {
            Some(g) => engine.denoise_guided_batch(chunk, &g[k * size..k * size + chunk.len()]),
            None => engine.denoise_batch(chunk),
        };
        let result = match std::panic::catch_unwind(AssertUnwindSafe(run)) {
            Ok(r) => r.map_err(JobError::Model)?,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown panic");
                return Err(JobError::Panicked(what.to_owned()));
            }
        };
        if result.len() != chunk.len() {
            return Err(JobError::WrongCount {
                got: result.len(),
                sent: chunk.len(),
            });
        }
        out.extend(result);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds one; fails on any slice whose first pixel is negative; records batch sizes.
    struct PlusOne(std::sync::Arc<std::sync::Mutex<Vec<usize>>>);

    impl Engine for PlusOne {
        fn denoise_batch(&mut self, slices: &[ArrayView2<f32>]) -> Result<Planes, String> {
            self.0.lock().unwrap().push(slices.len());
            if slices.iter().any(|s| s[[0, 0]] < 0.0) {
                return Err("negative".into());
            }
            Ok(slices.iter().map(|s| s.mapv(|v| v + 1.0)).collect())
        }
    }

    #[tokio::test]
    async fn queued_jobs_are_batched_and_a_bad_one_fails_alone() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (worker, thread) = Worker::spawn(
            vec![PlusOne(seen.clone())],
            WorkerOptions {
                batch_size: 4,
                batch_wait: Duration::from_millis(200),
                queue_depth: 8,
                noise_pool_slices: 16,
            },
        );
        let mut answers = Vec::new();
        for v in [1.0, -1.0, 3.0] {
            answers.push(
                worker
                    .submit(0, vec![Array2::from_elem((2, 2), v)], None)
                    .await
                    .unwrap(),
            );
        }
        let mut results = Vec::new();
        for a in answers {
            results.push(a.await.unwrap());
        }
        assert_eq!(results[0].as_ref().unwrap()[0][[0, 0]], 2.0);
        assert_eq!(
            results[1].as_ref().unwrap_err(),
            &JobError::Model("negative".into())
        );
        assert_eq!(results[2].as_ref().unwrap()[0][[1, 1]], 4.0);
        // One batch of three, then each job alone after it failed.
        assert_eq!(*seen.lock().unwrap(), vec![3, 1, 1, 1]);
        let unknown = worker
            .submit(5, vec![Array2::zeros((2, 2))], None)
            .await
            .unwrap();
        assert_eq!(unknown.await.unwrap().unwrap_err(), JobError::NoModel(5));
        drop(worker);
        thread.join().unwrap();
    }

    /// Each batch's size and the acceleration the engine was told before it.
    type Batches = std::sync::Arc<std::sync::Mutex<Vec<(Option<u32>, usize)>>>;

    /// Records what it was told before each batch and the batch's size.
    struct Told(Batches, Stated);

    impl Engine for Told {
        fn denoise_batch(&mut self, slices: &[ArrayView2<f32>]) -> Result<Planes, String> {
            self.0
                .lock()
                .unwrap()
                .push((self.1.acceleration, slices.len()));
            Ok(slices.iter().map(|s| s.to_owned()).collect())
        }

        fn set_stated(&mut self, stated: Stated) {
            self.1 = stated;
        }
    }

    #[tokio::test]
    async fn a_batch_holds_one_acquisitions_statement_and_the_engine_is_told_it() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (worker, thread) = Worker::spawn(
            vec![Told(seen.clone(), Stated::NOTHING)],
            WorkerOptions {
                batch_size: 8,
                batch_wait: Duration::from_millis(200),
                queue_depth: 16,
                noise_pool_slices: 1,
            },
        );
        let (mut three, plain) = (worker.for_connection(), worker.for_connection());
        three.set_stated(Stated {
            phase_encoding: None,
            acceleration: Some(3),
        });
        let mut answers = Vec::new();
        for _ in 0..3 {
            for w in [&three, &plain] {
                answers.push(
                    w.submit(0, vec![Array2::zeros((2, 2))], None)
                        .await
                        .unwrap(),
                );
            }
        }
        for a in answers {
            a.await.unwrap().unwrap();
        }
        let seen = seen.lock().unwrap().clone();
        // Two batches of three, each told its own connection's statement.
        let mut batches = seen.clone();
        batches.sort();
        assert_eq!(batches, vec![(None, 3), (Some(3), 3)], "{seen:?}");
        drop((worker, three, plain));
        thread.join().unwrap();
    }
}
