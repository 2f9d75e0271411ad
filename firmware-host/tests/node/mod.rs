//! The DICOM node's test harness: a node on a free loopback port with its spool, models
//! and a DCMTK `storescp` as the PACS, series written by pydicom from phantom slices, and a
//! sender of our own that pauses between slices.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use crossdenoise_host::dicom::dimse::{self, EXPLICIT_VR_LE, MR_IMAGE_STORAGE};
use crossdenoise_host::dicom::models::Models;
use crossdenoise_host::dicom::{self, Node, NodeStats, Working};
use crossdenoise_host::mrd::config::{Destination, DicomConfig};
use crossdenoise_runtime::DenoiserOptions;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

use crate::support::{self, Storescp, dicom_series, free_port, phantom_slices};

/// A node serving on a free loopback port until dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub node: Arc<Node>,
    pub stop: tokio::sync::watch::Sender<bool>,
    /// The pipeline and outbox too, when started with its models.
    pub working: Option<Working>,
}

impl Running {
    /// The node receiving into its spool; nothing denoised or sent.
    pub async fn start(spool: &Path, edit: impl FnOnce(&mut DicomConfig)) -> Self {
        Self::open(spool, edit, false).await
    }

    /// The whole node: receiving, denoising with the configured models, delivering.
    pub async fn start_working(spool: &Path, edit: impl FnOnce(&mut DicomConfig)) -> Self {
        Self::open(spool, edit, true).await
    }

    pub async fn open(spool: &Path, edit: impl FnOnce(&mut DicomConfig), working: bool) -> Self {
        // The node's log, when RUST_LOG asks for it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut config = DicomConfig {
            spool: spool.into(),
            ..DicomConfig::default()
        };
        edit(&mut config);
        let node = Arc::new(Node::open(config).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let working = if working {
            let models = Models::open(
                &node.config,
                &support::runtime(),
                &DenoiserOptions::default(),
            )
            .unwrap();
            Some(dicom::start(node.clone(), models, listener, stopped))
        } else {
            let mut stopped = stopped;
            tokio::spawn(node.clone().serve(listener, async move {
                let _ = stopped.wait_for(|s| *s).await;
            }));
            None
        };
        Running {
            addr,
            node,
            stop,
            working,
        }
    }

    /// Waits (20 s at most) until `n` instances have reached `pacs` and the spool holds
    /// nothing received; then stops the node and returns what arrived.
    pub async fn deliver_to(&mut self, pacs: &Storescp, n: usize) -> Vec<PathBuf> {
        let arrived = self.delivered(pacs, n).await;
        let _ = self.stop.send(true);
        if let Some(working) = self.working.take() {
            working.join().await;
        }
        assert_eq!(arrived.len(), n, "{}", self.stats().line());
        arrived
    }

    /// Waits (20 s at most) until `n` instances have reached `pacs` and the spool holds
    /// nothing received; returns what arrived, the node still running.
    pub async fn delivered(&self, pacs: &Storescp, n: usize) -> Vec<PathBuf> {
        let mut arrived = Vec::new();
        for _ in 0..200 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            arrived = pacs.received();
            if arrived.len() >= n && spooled(self).is_empty() {
                break;
            }
        }
        arrived
    }

    pub fn stats(&self) -> &NodeStats {
        &self.node.stats
    }

    pub fn count(&self, counter: impl Fn(&NodeStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        NodeStats::get(counter(self.stats()))
    }

    /// Sends `files` with `storescu` as the scanner would, and checks every one was taken.
    pub async fn send(&self, files: &[PathBuf]) {
        let out = self
            .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(files))
            .await;
        assert!(out.status.success(), "{}", said(&out));
    }

    /// Runs a DCMTK tool against the node: `tool -aet CALLING -aec CALLED host port ARGS`.
    pub async fn dcmtk(&self, tool: &str, calling: &str, called: &str, args: &[String]) -> Output {
        let mut cmd = Command::new(tool);
        cmd.env("TCP_NODELAY", support::DCMTK_TCP_NODELAY);
        cmd.args(["-aet", calling, "-aec", called, "-to", "10", "-ta", "10"])
            .arg("127.0.0.1")
            .arg(self.addr.port().to_string())
            .args(args);
        tokio::task::spawn_blocking(move || {
            cmd.output()
                .expect("DCMTK installed (scripts/install-dcmtk.sh)")
        })
        .await
        .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub fn said(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `n` phantom slices of `h x w` written by pydicom as one MR series in `dir`.
pub fn series(dir: &Path, n: usize, (h, w): (usize, usize)) -> Vec<PathBuf> {
    described_series(dir, n, (h, w), "PD_FS_COR")
}

/// The same, with its SeriesDescription (and a protocol name of the same words).
pub fn described_series(
    dir: &Path,
    n: usize,
    (h, w): (usize, usize),
    description: &str,
) -> Vec<PathBuf> {
    let flags = [
        format!("--description={description}"),
        format!("--protocol=knee_{}", description.to_ascii_lowercase()),
    ];
    dicom_series(dir, "s16", &phantom_slices(n, h, w), &flags)
}

/// `slices` as a series described `description` in `dir/<description>`, of one study and
/// frame of reference shared by every series written with this helper.
pub fn study_series(
    dir: &Path,
    description: &str,
    slices: &[ndarray::Array2<f32>],
) -> Vec<PathBuf> {
    let flags = [
        format!("--description={description}"),
        "--study=1.2.826.0.1.3680043.8.498.50".to_string(),
        "--frame=1.2.826.0.1.3680043.8.498.51".to_string(),
    ];
    dicom_series(&dir.join(description), "s16", slices, &flags)
}

/// A PD series of `pd` phantom slices and a PDFS series of the first `pdfs` of them at 0.6
/// of their level (a fat-suppressed partner of the same anatomy), 48 x 40, one study and
/// frame of reference, in `dir`.
pub fn pd_pdfs_pair(dir: &Path, pd: usize, pdfs: usize) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let pd_slices = phantom_slices(pd, 48, 40);
    let pdfs_slices: Vec<_> = pd_slices[..pdfs].iter().map(|s| s * 0.6).collect();
    (
        study_series(dir, "PD_TSE_COR", &pd_slices),
        study_series(dir, "PD_TSE_FS_COR", &pdfs_slices),
    )
}

pub fn spooled(node: &Running) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(node.node.spool.received())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

pub fn paths(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|f| f.display().to_string()).collect()
}

/// The SOP Instance UID of a file, as pydicom wrote it.
pub fn dicom_uid(file: &Path) -> String {
    let obj = dicom_object::open_file(file).unwrap();
    obj.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

/// A text attribute of a DICOM file.
pub fn attribute(file: &Path, tag: dicom_core::Tag) -> String {
    text(&dicom_object::open_file(file).unwrap(), tag)
}

/// The derived instance among `arrived` that is `input` (a slice of the series described
/// `description`) denoised: the one at its position in `{description} denoised`.
pub fn delivered_copy<'a>(arrived: &'a [PathBuf], input: &Path, description: &str) -> &'a PathBuf {
    use dicom_dictionary_std::tags;
    let position = attribute(input, tags::IMAGE_POSITION_PATIENT);
    arrived
        .iter()
        .find(|p| {
            attribute(p, tags::IMAGE_POSITION_PATIENT) == position
                && attribute(p, tags::SERIES_DESCRIPTION) == format!("{description} denoised")
        })
        .unwrap_or_else(|| panic!("{description}: no result at {position}"))
}

/// A text attribute of a data set (an item of a sequence, say).
pub fn text(obj: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// A whole node in `dir/spool` (series stable after 0.3 s, then `edit`), delivering to a
/// `storescp` of its own in `dir/pacs`.
pub async fn node_and_pacs(dir: &Path, edit: impl FnOnce(&mut DicomConfig)) -> (Running, Storescp) {
    let port = free_port();
    let pacs = Storescp::start(port, &dir.join("pacs"));
    let node = Running::start_working(&dir.join("spool"), |c| {
        c.destination = Some(Destination {
            ae_title: "PACS".into(),
            address: format!("127.0.0.1:{port}"),
        });
        c.series_stable_s = 0.3;
        edit(c);
    })
    .await;
    (node, pacs)
}

/// The same with a PDFS single-contrast test model as `pdfs_alone`.
pub async fn pdfs_node_and_pacs(dir: &Path) -> (Running, Storescp, PathBuf) {
    let model = support::test_model(dir, "pdfs_single.onnx", &[]);
    let (node, pacs) = node_and_pacs(dir, |c| c.models.pdfs_alone = Some(model.clone())).await;
    (node, pacs, model)
}

/// A whole node with guided test models of both contrasts and a PD single-contrast one
/// (`pair_wait_s` 600 s); the models' paths: PD guided, PDFS guided, PD alone.
pub async fn guided_node(dir: &Path) -> (Running, Storescp, [PathBuf; 3]) {
    let (pd, pdfs) = guided_models(dir);
    let pd_alone = support::test_model(dir, "pd_single.onnx", &["--contrast", "pd"]);
    let (node, pacs) = node_and_pacs(dir, |c| {
        c.pair_wait_s = 600.0;
        c.models.pd = Some(pd.clone());
        c.models.pdfs = Some(pdfs.clone());
        c.models.pd_alone = Some(pd_alone.clone());
    })
    .await;
    (node, pacs, [pd, pdfs, pd_alone])
}

/// A whole node with guided test models of both contrasts (no single-contrast ones), then
/// `edit`.
pub async fn guided_pair_node(
    dir: &Path,
    edit: impl FnOnce(&mut DicomConfig),
) -> (Running, Storescp) {
    let (pd, pdfs) = guided_models(dir);
    node_and_pacs(dir, |c| {
        c.models.pd = Some(pd);
        c.models.pdfs = Some(pdfs);
        edit(c);
    })
    .await
}

/// Guided test models of each contrast in `dir` (PD guided by PDFS, PDFS by PD).
pub fn guided_models(dir: &Path) -> (PathBuf, PathBuf) {
    let model = |name: &str, contrast: &str| {
        support::test_model(dir, name, &["--contrast", contrast, "--guided"])
    };
    (
        model("pd_guided.onnx", "pd"),
        model("pdfs_guided.onnx", "pdfs"),
    )
}

/// The test model at `model`, opened as the node opens it.
fn open_model(model: &Path) -> crossdenoise_runtime::Denoiser {
    crossdenoise_runtime::Denoiser::open(&support::runtime(), model, &DenoiserOptions::default())
        .unwrap()
}

/// The pixels of a DICOM slice.
fn dicom_image(file: &Path) -> ndarray::Array2<f32> {
    crossdenoise_image::dicom::DicomSlice::read(file)
        .unwrap()
        .image
}

/// What the guided model at `model` makes of the DICOM slice `input` with `guide`: what the
/// node must have delivered for it.
pub fn guided_result(model: &Path, input: &Path, guide: &Path) -> ndarray::Array2<f32> {
    open_model(model)
        .denoise_guided_batch(&[dicom_image(input).view()], &[dicom_image(guide).view()])
        .unwrap()
        .remove(0)
}

/// What the guided model at `model` makes of the DICOM series `inputs` with `guides`, the
/// series prepared as one (its noise maps estimated from all its slices, as the node and
/// `crossdenoise denoise` do), and what preparing it did.
pub fn guided_series_result(
    model: &Path,
    inputs: &[PathBuf],
    guides: &[PathBuf],
) -> (Vec<ndarray::Array2<f32>>, crossdenoise_runtime::SeriesNoise) {
    let mut denoiser = open_model(model);
    let images: Vec<_> = inputs.iter().map(|f| dicom_image(f)).collect();
    let partners: Vec<_> = guides.iter().map(|f| dicom_image(f)).collect();
    let views: Vec<_> = images.iter().map(|i| i.view()).collect();
    let guide_views: Vec<_> = partners.iter().map(|g| g.view()).collect();
    let prepared = denoiser.prepare_series(&views, Some(&guide_views)).unwrap();
    let out = views
        .iter()
        .zip(&guide_views)
        .map(|(i, g)| {
            denoiser
                .denoise_guided_batch(&[*i], &[*g])
                .unwrap()
                .remove(0)
        })
        .collect();
    (out, prepared)
}

/// Sends `files` in one association, pausing `pause` after each: a slow scanner or link.
pub async fn send_slowly(port: u16, files: &[PathBuf], pause: Duration) {
    let mut association = ClientAssociationOptions::new()
        .calling_ae_title("SLOW")
        .called_ae_title("CROSSDENOISE")
        .with_presentation_context(MR_IMAGE_STORAGE, vec![EXPLICIT_VR_LE])
        .establish_async(format!("127.0.0.1:{port}").as_str())
        .await
        .unwrap();
    let pc = association.presentation_contexts()[0].id;
    let ts = TransferSyntaxRegistry.get(EXPLICIT_VR_LE).unwrap();
    for (i, file) in files.iter().enumerate() {
        let obj = dicom_object::open_file(file).unwrap();
        let mut data = Vec::new();
        obj.write_dataset_with_ts(&mut data, ts).unwrap();
        let id = i as u16 + 1;
        let command = dimse::store_request(id, MR_IMAGE_STORAGE, &dicom_uid(file));
        for (value_type, data) in [
            (PDataValueType::Command, command),
            (PDataValueType::Data, data),
        ] {
            association
                .send(&Pdu::PData {
                    data: vec![PDataValue {
                        presentation_context_id: pc,
                        value_type,
                        is_last: true,
                        data,
                    }],
                })
                .await
                .unwrap();
        }
        let Pdu::PData { data } = association.receive().await.unwrap() else {
            panic!("no C-STORE response");
        };
        let (answered, status) = dimse::response_status(&data[0].data).unwrap();
        assert_eq!((answered, status), (id, 0));
        tokio::time::sleep(pause).await;
    }
    association.release().await.unwrap();
}
