//! `crossdenoise-host send`: the scanner's side, for tests and demos. Streams slices as MRD
//! images to a daemon on one task while another receives, writes what comes back, and fails
//! unless every image sent came back (denoised or unchanged).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crossdenoise_runtime::denoise_files::collect_inputs;
use crossdenoise_runtime::io::{read_slice, write_npy};
use tokio::net::TcpStream;

use crate::mrd::{DataType, Image, Message, MessageReader, MessageWriter, Meta};
use crate::session::IMAGE_TYPE_MARK;

/// Attribute naming the file an image was read from, so answers can be matched to inputs.
pub const SOURCE_ATTRIBUTE: &str = "crossdenoiseSource";

#[derive(Debug, Clone)]
pub struct SendOptions {
    pub config_name: String,
    pub data_type: DataType,
    /// Largest message accepted back, in bytes.
    pub max_message: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendReport {
    pub sent: usize,
    pub denoised: usize,
    pub unchanged: usize,
    /// TEXT messages from the server.
    pub texts: Vec<String>,
    /// Files written, in the order received.
    pub written: Vec<PathBuf>,
    pub server_closed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Input(#[from] crossdenoise_runtime::Error),
    #[error("{0} images is more than one MRD series can number (65535)")]
    TooMany(usize),
    #[error("{addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("sending: {0}")]
    Send(std::io::Error),
    #[error("receiving: {0}")]
    Receive(#[from] crate::mrd::ReadError),
    #[error("{path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: crossdenoise_runtime::Error,
    },
    #[error("{missing} of {sent} images did not come back (first: {first})")]
    Lost {
        missing: usize,
        sent: usize,
        first: String,
    },
}

/// Sends every slice of `inputs` (files or folders of .npy / .png / DICOM) to `addr` and
/// writes the answers into `out`: `NAME.denoised.npy` for denoised images, `NAME.npy` for
/// images returned unchanged.
pub async fn send(
    addr: &str,
    inputs: &[PathBuf],
    out: &Path,
    options: &SendOptions,
) -> Result<SendReport, SendError> {
    let files = collect_inputs(inputs)?;
    if files.len() > usize::from(u16::MAX) {
        return Err(SendError::TooMany(files.len()));
    }
    let mut images = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let plane = read_slice(&file.path)?;
        let mut image = Image::from_plane(&plane, options.data_type);
        image.header.image_index = i as u16 + 1;
        image.header.image_series_index = 1;
        image.header.slice = i as u16;
        let mut meta = Meta::new();
        meta.set(SOURCE_ATTRIBUTE, vec![file.output.display().to_string()]);
        image.attributes = meta.to_xml();
        images.push(image);
    }
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| SendError::Connect {
            addr: addr.into(),
            source,
        })?;
    stream.set_nodelay(true).ok();
    let (r, w) = stream.into_split();
    let config_name = options.config_name.clone();
    let sender = tokio::spawn(async move {
        let mut writer = MessageWriter::new(w);
        writer.write(&Message::ConfigFile(config_name)).await?;
        writer.write(&Message::Header(minimal_header())).await?;
        for image in images {
            writer.write(&Message::Image(image)).await?;
        }
        writer.write(&Message::Close).await
    });
    let mut reader = MessageReader::new(r, options.max_message);
    let mut report = SendReport {
        sent: files.len(),
        ..SendReport::default()
    };
    let mut back: BTreeMap<u16, usize> = BTreeMap::new();
    std::fs::create_dir_all(out).map_err(|source| SendError::CreateDir {
        path: out.into(),
        source,
    })?;
    while let Some(msg) = reader.read().await? {
        match msg {
            Message::Close => {
                report.server_closed = true;
                break;
            }
            Message::Text(t) => report.texts.push(t),
            Message::Image(image) => {
                let meta = Meta::parse(&image.attributes).unwrap_or_default();
                let denoised = meta
                    .get("ImageType")
                    .is_some_and(|v| v.iter().any(|t| t == IMAGE_TYPE_MARK));
                let name = meta
                    .first(SOURCE_ATTRIBUTE)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| format!("image_{:05}", image.header.image_index).into());
                let suffix = if denoised { "denoised.npy" } else { "npy" };
                let path = out.join(name.with_extension(suffix));
                if let Some(parent) = path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let planes = image.planes().map_err(|e| SendError::Write {
                    path: path.clone(),
                    source: crossdenoise_runtime::Error::Invalid {
                        what: "returned image",
                        reason: e.to_string(),
                    },
                })?;
                write_npy(&path, planes[0].view()).map_err(|source| SendError::Write {
                    path: path.clone(),
                    source,
                })?;
                report.written.push(path);
                *back.entry(image.header.image_index).or_default() += 1;
                if denoised {
                    report.denoised += 1;
                } else {
                    report.unchanged += 1;
                }
            }
            _ => {}
        }
    }
    match sender.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(SendError::Send(e)),
        Err(e) => return Err(SendError::Send(std::io::Error::other(e.to_string()))),
    }
    let missing: Vec<&Path> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| !back.contains_key(&(*i as u16 + 1)))
        .map(|(_, f)| f.path.as_path())
        .collect();
    if let Some(first) = missing.first() {
        return Err(SendError::Lost {
            missing: missing.len(),
            sent: files.len(),
            first: first.display().to_string(),
        });
    }
    Ok(report)
}

/// The smallest ISMRMRD header a FIRE server accepts: the daemon does not need more.
fn minimal_header() -> String {
    "<?xml version=\"1.0\"?><ismrmrdHeader xmlns=\"http://www.ismrm.org/ISMRMRD\">\
     <encoding><trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
        .into()
}
