//! `crossdenoise-host send`: the scanner's side, for tests and demos. Streams slices as MRD
//! images to a daemon on one task while another receives, writes what comes back, and fails
//! unless every image sent came back (denoised or unchanged).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossdenoise_image::io::{read_slice, write_npy};
use crossdenoise_runtime::denoise_files::collect_inputs;
use tokio::net::TcpStream;

use crate::mrd::h5::{H5Error, is_h5, read_images};
use crate::mrd::session::{IMAGE_TYPE_MARK, SYNTHESIZED_MARK};
use crate::mrd::{DataType, Image, Message, MessageReader, MessageWriter, Meta};

/// Attribute naming the file an image was read from, so answers can be matched to inputs.
pub const SOURCE_ATTRIBUTE: &str = "crossdenoiseSource";

#[derive(Debug, Clone)]
pub struct SendOptions {
    pub config_name: String,
    pub data_type: DataType,
    /// Largest message accepted back, in bytes.
    pub max_message: usize,
    /// Send the inputs slice by slice in turn (the first slice of each, then the second, ...)
    /// rather than one after the other: how two contrasts reach a guided model together.
    pub interleave: bool,
    /// The ISMRMRD XML header sent before the images (`None`: a minimal one). The daemon
    /// reads the study from it (`frameOfReferenceUID`, else patient and study), which is
    /// how it pairs partner series sent on separate connections.
    pub header: Option<String>,
}

/// A minimal ISMRMRD header naming the frame of reference `uid`, as a scanner's names the
/// patient coordinate system its series share.
pub fn header_with_frame_of_reference(uid: &str) -> String {
    let escaped = uid
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\"?><ismrmrdHeader xmlns=\"http://www.ismrm.org/ISMRMRD\">\
         <measurementInformation><frameOfReferenceUID>{escaped}</frameOfReferenceUID>\
         </measurementInformation><encoding><trajectory>cartesian</trajectory></encoding>\
         </ismrmrdHeader>"
    )
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendReport {
    pub sent: usize,
    pub denoised: usize,
    /// Images of the other contrast made by the cross path (contrast synthesis).
    pub synthesized: usize,
    pub unchanged: usize,
    /// TEXT messages from the server.
    pub texts: Vec<String>,
    /// Files written, in the order received.
    pub written: Vec<PathBuf>,
    pub server_closed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// An input file that cannot be read.
    #[error(transparent)]
    Input(#[from] crossdenoise_image::Error),
    /// An input folder that cannot be listed.
    #[error(transparent)]
    Inputs(#[from] crossdenoise_runtime::Error),
    #[error(transparent)]
    H5(#[from] H5Error),
    #[error("{0} images is more than one MRD series can number (65535)")]
    TooMany(usize),
    #[error("{addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "the connection ended early ({reason}): {sent} of {total} images sent, {answered} answered and written, {} not processed{}",
        total - answered,
        if first.is_empty() { String::new() } else { format!(" (first: {first})") }
    )]
    Incomplete {
        reason: String,
        sent: usize,
        total: usize,
        answered: usize,
        first: String,
    },
    #[error("{path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: crossdenoise_image::Error,
    },
    #[error("{missing} of {sent} images did not come back (first: {first})")]
    Lost {
        missing: usize,
        sent: usize,
        first: String,
    },
}

/// Sends every slice of `inputs` (files or folders of .npy / .png / DICOM, or MRD `.h5`
/// files, whose images go as recorded) to `addr` and writes the answers into `out`:
/// `NAME.denoised.npy` for denoised images, `NAME.synthesized.npy` for the cross path's
/// (an image of the other contrast), `NAME.npy` for images returned unchanged.
/// The slices of input `k` form series `k + 1` with contrast index `k`, numbered from 0 and
/// described by the input's name, so a daemon can tell the contrasts apart and pair slices.
pub async fn send(
    addr: &str,
    inputs: &[PathBuf],
    out: &Path,
    options: &SendOptions,
) -> Result<SendReport, SendError> {
    let (names, images) = gather(inputs, options)?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| SendError::Connect {
            addr: addr.into(),
            source,
        })?;
    stream.set_nodelay(true).ok();
    let (r, w) = stream.into_split();
    let config_name = options.config_name.clone();
    let header = options.header.clone().unwrap_or_else(minimal_header);
    // Counts the images that went out, for the report if the connection ends early.
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn({
        let sent = sent.clone();
        async move {
            let mut writer = MessageWriter::new(w);
            writer.write(&Message::ConfigFile(config_name)).await?;
            writer.write(&Message::Header(header)).await?;
            for image in images {
                writer.write(&Message::Image(image)).await?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            writer.write(&Message::Close).await
        }
    });
    let mut reader = MessageReader::new(r, options.max_message);
    let mut report = SendReport {
        sent: names.len(),
        ..SendReport::default()
    };
    let mut back: BTreeSet<String> = BTreeSet::new();
    std::fs::create_dir_all(out).map_err(|source| SendError::CreateDir {
        path: out.into(),
        source,
    })?;
    let mut receive_error = None;
    loop {
        let msg = match reader.read().await {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(e) => {
                receive_error = Some(e.to_string());
                break;
            }
        };
        match msg {
            Message::Close => {
                report.server_closed = true;
                break;
            }
            Message::Text(t) => report.texts.push(t),
            Message::Image(image) => {
                back.insert(write_answer(&image, out, &mut report)?);
            }
            _ => {}
        }
    }
    // The server may have stopped reading before we finished sending: then what we could
    // not send is the reason, not a pipe error.
    if !report.server_closed || receive_error.is_some() {
        sender.abort();
    }
    let send_error = match sender.await {
        Ok(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let missing: Vec<&String> = names.iter().filter(|n| !back.contains(*n)).collect();
    let reason = receive_error.or(send_error).or_else(|| {
        (!report.server_closed).then(|| "the server ended the connection without close".into())
    });
    if let Some(reason) = reason {
        return Err(SendError::Incomplete {
            reason,
            sent: sent.load(Ordering::Relaxed),
            total: names.len(),
            answered: names.len() - missing.len(),
            first: missing.first().map_or_else(String::new, |m| m.to_string()),
        });
    }
    if let Some(first) = missing.first() {
        return Err(SendError::Lost {
            missing: missing.len(),
            sent: names.len(),
            first: first.to_string(),
        });
    }
    Ok(report)
}

/// The images to send, in sending order, each carrying its answer files' name (returned
/// beside them), so that answers are matched whatever the server does to the header.
#[allow(clippy::result_large_err)] // `send`'s own error, made once per call
fn gather(
    inputs: &[PathBuf],
    options: &SendOptions,
) -> Result<(Vec<String>, Vec<Image>), SendError> {
    let (h5, others): (Vec<PathBuf>, Vec<PathBuf>) = inputs
        .iter()
        .cloned()
        .partition(|p| p.is_file() && is_h5(p));
    // (name of the answer files, image to send)
    let mut images: Vec<(PathBuf, Image)> = Vec::new();
    if !others.is_empty() || h5.is_empty() {
        images = series_images(&others, options)?;
    }
    for path in &h5 {
        let stem = path.file_stem().map(PathBuf::from).unwrap_or_default();
        for (i, (group, image)) in read_images(path)?.into_iter().enumerate() {
            let name = stem.join(format!("{}_{i:04}", group.replace('/', "_")));
            images.push((name, image));
        }
    }
    if images.len() > usize::from(u16::MAX) {
        return Err(SendError::TooMany(images.len()));
    }
    let mut names = Vec::with_capacity(images.len());
    let images: Vec<Image> = images
        .into_iter()
        .map(|(name, mut image)| {
            let mut meta = Meta::parse(&image.attributes).unwrap_or_default();
            meta.set(SOURCE_ATTRIBUTE, vec![name.display().to_string()]);
            image.attributes = meta.to_xml();
            names.push(name.display().to_string());
            image
        })
        .collect();
    Ok((names, images))
}

/// The slices of each input (a file or folder of .npy / .png / DICOM) as series `k + 1`
/// with contrast index `k`, described by the input's name; one series after the other, or
/// interleaved slice by slice.
#[allow(clippy::result_large_err)] // `send`'s own error, made once per call
fn series_images(
    inputs: &[PathBuf],
    options: &SendOptions,
) -> Result<Vec<(PathBuf, Image)>, SendError> {
    let mut series: Vec<Vec<(PathBuf, Image)>> = Vec::new();
    for (k, input) in inputs.iter().enumerate() {
        let description = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut slices = Vec::new();
        for (i, file) in collect_inputs(std::slice::from_ref(input))?
            .iter()
            .enumerate()
        {
            let plane = read_slice(&file.path)?;
            let mut image = Image::from_plane(&plane, options.data_type);
            image.header.image_series_index = k as u16 + 1;
            image.header.contrast = k as u16;
            image.header.slice = i as u16;
            let mut meta = Meta::new();
            meta.set("SequenceDescription", vec![description.clone()]);
            image.attributes = meta.to_xml();
            slices.push((file.output.clone(), image));
        }
        series.push(slices);
    }
    let mut images = Vec::new();
    if options.interleave {
        let longest = series.iter().map(Vec::len).max().unwrap_or(0);
        let mut queues: Vec<_> = series.into_iter().map(Vec::into_iter).collect();
        for _ in 0..longest {
            images.extend(queues.iter_mut().filter_map(Iterator::next));
        }
    } else {
        images.extend(series.into_iter().flatten());
    }
    for (i, (_, image)) in images.iter_mut().enumerate() {
        image.header.image_index = i as u16 + 1;
    }
    Ok(images)
}

/// Writes one answer's planes under `out` by the name it carries, counts it by kind, and
/// returns that name. Complex or other non-magnitude answers are counted, not written.
#[allow(clippy::result_large_err)] // `send`'s own error, made once per call
fn write_answer(image: &Image, out: &Path, report: &mut SendReport) -> Result<String, SendError> {
    let meta = Meta::parse(&image.attributes).unwrap_or_default();
    let marked = |mark: &str| {
        meta.get("ImageType")
            .is_some_and(|v| v.iter().any(|t| t == mark))
    };
    let (denoised, synthesized) = (marked(IMAGE_TYPE_MARK), marked(SYNTHESIZED_MARK));
    let name = meta
        .first(SOURCE_ATTRIBUTE)
        .map(PathBuf::from)
        .unwrap_or_else(|| format!("image_{:05}", image.header.image_index).into());
    let suffix = match (denoised, synthesized) {
        (true, _) => "denoised.npy",
        (_, true) => "synthesized.npy",
        _ => "npy",
    };
    if let Ok(planes) = image.planes() {
        for (k, plane) in planes.iter().enumerate() {
            let file = if planes.len() == 1 {
                name.with_extension(suffix)
            } else {
                PathBuf::from(format!("{}_p{k}", name.display())).with_extension(suffix)
            };
            let path = out.join(file);
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            write_npy(&path, plane.view()).map_err(|source| SendError::Write {
                path: path.clone(),
                source,
            })?;
            report.written.push(path);
        }
    }
    if denoised {
        report.denoised += 1;
    } else if synthesized {
        report.synthesized += 1;
    } else {
        report.unchanged += 1;
    }
    Ok(name.display().to_string())
}

/// The smallest ISMRMRD header a FIRE server accepts: the daemon does not need more.
fn minimal_header() -> String {
    "<?xml version=\"1.0\"?><ismrmrdHeader xmlns=\"http://www.ismrm.org/ISMRMRD\">\
     <encoding><trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
        .into()
}
