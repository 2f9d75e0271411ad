//! Reading and writing slices: `.npy` through `ndarray-npy`, PNG through `png`, and paired
//! PD / PDFS folders.
//!
//! Readers hand back intensities as f32 in the file's own units (a 16-bit PNG gives
//! 0..65535); scaling is the normalisation's job, not the file format's.

use std::fs;
use std::io::{BufWriter, Cursor};
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, ArrayView2, Ix2};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};

use crate::noise_map::Stated;
use crate::{Error, Result};

/// File formats a slice can be stored in, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Npy,
    Png,
    Dicom,
}

impl Format {
    pub fn of(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("npy") => Ok(Format::Npy),
            Some("png") => Ok(Format::Png),
            _ if crate::dicom::is_dicom(path) => Ok(Format::Dicom),
            _ => Err(Error::Extension { path: path.into() }),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Npy => "npy",
            Format::Png => "png",
            Format::Dicom => "dcm",
        }
    }
}

/// Reads one slice from a `.npy`, `.png` or DICOM file as f32 (DICOM in real-world units,
/// after the rescale).
pub fn read_slice(path: &Path) -> Result<Array2<f32>> {
    match Format::of(path)? {
        Format::Npy => read_npy(path),
        Format::Png => read_png(path).map(|g| g.to_f32()),
        Format::Dicom => crate::dicom::DicomSlice::read(path).map(|d| d.image),
    }
}

/// One slice as [`read_slice`] reads it, and what its file states of the acquisition: a
/// DICOM file's phase-encoding direction and acceleration (`DicomSlice::stated`), nothing
/// for the other formats.
pub fn read_slice_stated(path: &Path) -> Result<(Array2<f32>, Stated)> {
    match Format::of(path)? {
        Format::Dicom => {
            let slice = crate::dicom::DicomSlice::read(path)?;
            let stated = slice.stated();
            Ok((slice.image, stated))
        }
        _ => Ok((read_slice(path)?, Stated::NOTHING)),
    }
}

/// Reads a 2-D real `.npy` array of float32, float64 or uint16 as f32.
pub fn read_npy(path: &Path) -> Result<Array2<f32>> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    check_npy_size(&bytes).map_err(|reason| Error::Npy {
        path: path.into(),
        reason,
    })?;
    let npy_err = |e: ReadNpyError| match e {
        ReadNpyError::WrongDescriptor(d) => Error::NpyDtype {
            path: path.into(),
            dtype: d.to_string(),
        },
        other => Error::Npy {
            path: path.into(),
            reason: other.to_string(),
        },
    };
    let is_dtype = |e: &ReadNpyError| matches!(e, ReadNpyError::WrongDescriptor(_));
    let any: ArrayD<f32> = match ArrayD::<f32>::read_npy(Cursor::new(&bytes)) {
        Ok(a) => a,
        Err(e) if is_dtype(&e) => match ArrayD::<f64>::read_npy(Cursor::new(&bytes)) {
            Ok(a) => a.mapv(|v| v as f32),
            Err(e) if is_dtype(&e) => ArrayD::<u16>::read_npy(Cursor::new(&bytes))
                .map_err(npy_err)?
                .mapv(f32::from),
            Err(e) => return Err(npy_err(e)),
        },
        Err(e) => return Err(npy_err(e)),
    };
    let ndim = any.ndim();
    any.into_dimensionality::<Ix2>()
        .map_err(|_| Error::NotTwoD {
            path: path.into(),
            ndim,
        })
}

/// Checks the array a `.npy` header declares against the bytes that follow it, before
/// anything is allocated for it: a header claiming a huge shape must fail as a bad file,
/// not as an allocation of what it claims.
fn check_npy_size(bytes: &[u8]) -> std::result::Result<(), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return Err("not an .npy file (no \\x93NUMPY magic)".into());
    }
    let (len_bytes, start) = match bytes[6] {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => return Err(format!("unknown .npy format version {v}")),
    };
    if bytes.len() < start {
        return Err("the header is cut short".into());
    }
    let header_len = bytes[8..8 + len_bytes]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let Some(header) = bytes.get(start..start.saturating_add(header_len)) else {
        return Err(format!(
            "the header claims {header_len} bytes but the file holds {}",
            bytes.len()
        ));
    };
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest.to_owned())
    };
    let item: usize = field("descr")
        .and_then(|d| {
            let d = d.strip_prefix('\'')?;
            let digits: String = d
                .split('\'')
                .next()?
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .collect();
            digits.parse().ok()
        })
        .ok_or("the header has no readable 'descr'")?;
    let shape = field("shape")
        .and_then(|s| Some(s.strip_prefix('(')?.split(')').next()?.to_owned()))
        .ok_or("the header has no readable 'shape'")?;
    let mut elements: u128 = 1;
    for dim in shape.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let dim: u128 = dim
            .parse()
            .map_err(|_| format!("shape ({shape}): {dim:?} is not a size"))?;
        elements = elements.saturating_mul(dim);
    }
    let needed = elements.saturating_mul(item as u128);
    let held = (bytes.len() - start - header_len) as u128;
    if needed > held {
        return Err(format!(
            "the header declares shape ({shape}) of {item}-byte values = {needed} bytes, but the file holds {held} bytes of data"
        ));
    }
    Ok(())
}

/// Writes a slice as a float32 `.npy` file.
pub fn write_npy(path: &Path, image: ArrayView2<f32>) -> Result<()> {
    let file = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    image
        .write_npy(BufWriter::new(file))
        .map_err(|e| Error::Npy {
            path: path.into(),
            reason: e.to_string(),
        })
}

/// A grayscale PNG's pixels at the file's own bit depth.
#[derive(Debug, Clone, PartialEq)]
pub enum GrayImage {
    U8(Array2<u8>),
    U16(Array2<u16>),
}

impl GrayImage {
    pub fn to_f32(&self) -> Array2<f32> {
        match self {
            GrayImage::U8(a) => a.mapv(f32::from),
            GrayImage::U16(a) => a.mapv(f32::from),
        }
    }

    pub fn dim(&self) -> (usize, usize) {
        match self {
            GrayImage::U8(a) => a.dim(),
            GrayImage::U16(a) => a.dim(),
        }
    }
}

/// Reads an 8- or 16-bit grayscale PNG.
pub fn read_png(path: &Path) -> Result<GrayImage> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    let png_err = |e: png::DecodingError| Error::Png {
        path: path.into(),
        reason: e.to_string(),
    };
    // Deflate expands at most ~1032:1, so a header promising more than that of the file's
    // size is refused before its image buffer is allocated.
    let limits = png::Limits {
        bytes: bytes.len().saturating_mul(1032).saturating_add(1 << 20),
    };
    let mut reader = png::Decoder::new_with_limits(Cursor::new(&bytes), limits)
        .read_info()
        .map_err(png_err)?;
    let (color, depth) = {
        let info = reader.info();
        (info.color_type, info.bit_depth)
    };
    if color != png::ColorType::Grayscale {
        return Err(Error::PngFormat {
            path: path.into(),
            reason: format!("colour type {color:?}"),
        });
    }
    if !matches!(depth, png::BitDepth::Eight | png::BitDepth::Sixteen) {
        return Err(Error::PngFormat {
            path: path.into(),
            reason: format!("bit depth {depth:?}"),
        });
    }
    let size = reader.output_buffer_size().ok_or_else(|| Error::Png {
        path: path.into(),
        reason: "image too large".into(),
    })?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(png_err)?;
    let (h, w) = (frame.height as usize, frame.width as usize);
    let stride = frame.line_size;
    let shape_err = |_| Error::Png {
        path: path.into(),
        reason: "pixel data does not fill the image".into(),
    };
    match depth {
        png::BitDepth::Eight => {
            let px: Vec<u8> = (0..h)
                .flat_map(|i| buf[i * stride..i * stride + w].iter().copied())
                .collect();
            Array2::from_shape_vec((h, w), px)
                .map(GrayImage::U8)
                .map_err(shape_err)
        }
        _ => {
            let px: Vec<u16> = (0..h)
                .flat_map(|i| {
                    buf[i * stride..i * stride + 2 * w]
                        .chunks_exact(2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]]))
                })
                .collect();
            Array2::from_shape_vec((h, w), px)
                .map(GrayImage::U16)
                .map_err(shape_err)
        }
    }
}

/// Writes an 8- or 16-bit grayscale PNG.
pub fn write_png(path: &Path, image: &GrayImage) -> Result<()> {
    let (h, w) = image.dim();
    let (depth, data): (png::BitDepth, Vec<u8>) = match image {
        GrayImage::U8(a) => (png::BitDepth::Eight, a.iter().copied().collect()),
        GrayImage::U16(a) => (
            png::BitDepth::Sixteen,
            a.iter().flat_map(|v| v.to_be_bytes()).collect(),
        ),
    };
    let file = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let err = |e: png::EncodingError| Error::Png {
        path: path.into(),
        reason: e.to_string(),
    };
    let mut enc = png::Encoder::new(BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(depth);
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(&data).map_err(err)?;
    writer.finish().map_err(err)
}

/// Writes a slice in the format its extension names: float32 `.npy`, or a 16-bit PNG of the
/// values rounded and clamped to 0..65535 (for intensities already in scanner units).
pub fn write_slice(path: &Path, image: ArrayView2<f32>) -> Result<()> {
    match Format::of(path)? {
        Format::Npy => write_npy(path, image),
        Format::Png => write_png(
            path,
            &GrayImage::U16(image.mapv(|v| v.round().clamp(0.0, 65535.0) as u16)),
        ),
        // A DICOM image is only ever written as a derived copy of the file it came from,
        // which carries the patient, study and pixel format (`dicom::DicomSlice::derive`).
        Format::Dicom => Err(Error::Invalid {
            what: "output format",
            reason: format!(
                "{}: a bare array cannot be written as DICOM; write .npy or .png",
                path.display()
            ),
        }),
    }
}

/// One PD / PDFS pair found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairPaths {
    /// The shared file name, e.g. `0007.npy`.
    pub name: String,
    pub a: PathBuf,
    pub b: PathBuf,
}

/// A paired data set: `<root>/<a_dir>/*` and `<root>/<b_dir>/*` matched by file name.
#[derive(Debug, Clone)]
pub struct PairedFolder {
    pub root: PathBuf,
    pub pairs: Vec<PairPaths>,
}

impl PairedFolder {
    /// The default layout, `pd/` and `pdfs/`.
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_with(root, "pd", "pdfs")
    }

    /// Lists both folders and matches their images by file name. Every file must have a
    /// partner: a silently dropped slice would bias training and hide a broken export.
    pub fn open_with(root: &Path, a_dir: &str, b_dir: &str) -> Result<Self> {
        if !root.is_dir() {
            return Err(Error::Folder {
                path: root.into(),
                reason: "data folder does not exist or is not a folder".into(),
            });
        }
        // Report a missing folder before an empty one: it is the likelier mistake
        // (a typo in the layout), and the fix differs.
        for dir in [a_dir, b_dir] {
            if !root.join(dir).is_dir() {
                return Err(Error::Folder {
                    path: root.join(dir),
                    reason: "folder does not exist".into(),
                });
            }
        }
        let a = list_images(&root.join(a_dir))?;
        let b = list_images(&root.join(b_dir))?;
        let only_a: Vec<String> = a
            .iter()
            .filter(|n| b.binary_search(n).is_err())
            .cloned()
            .collect();
        let only_b: Vec<String> = b
            .iter()
            .filter(|n| a.binary_search(n).is_err())
            .cloned()
            .collect();
        if !only_a.is_empty() || !only_b.is_empty() {
            return Err(Error::Unpaired {
                root: root.into(),
                a_dir: a_dir.into(),
                b_dir: b_dir.into(),
                only_a,
                only_b,
            });
        }
        let pairs = a
            .into_iter()
            .map(|name| PairPaths {
                a: root.join(a_dir).join(&name),
                b: root.join(b_dir).join(&name),
                name,
            })
            .collect();
        Ok(PairedFolder {
            root: root.into(),
            pairs,
        })
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Loads pair `i` and checks that both slices have one size.
    pub fn load(&self, i: usize) -> Result<(Array2<f32>, Array2<f32>)> {
        let p = &self.pairs[i];
        let a = read_slice(&p.a)?;
        let b = read_slice(&p.b)?;
        if a.dim() != b.dim() {
            return Err(Error::Shape {
                what: "image pair",
                expected: format!(
                    "{} to have the size of {} {:?}",
                    p.b.display(),
                    p.a.display(),
                    a.dim()
                ),
                got: format!("{:?}", b.dim()),
            });
        }
        Ok((a, b))
    }
}

/// The sorted names of the `.npy` / `.png` files in `dir`; other files (notes, thumbnails
/// in other formats) are ignored, but a folder without any image is an error.
fn list_images(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if path.is_file() && Format::of(&path).is_ok() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    if names.is_empty() {
        return Err(Error::Folder {
            path: dir.into(),
            reason: "folder holds no .npy or .png images".into(),
        });
    }
    names.sort();
    Ok(names)
}
