//! fastMRI's knee files (Zbontar et al. 2018, NYU Langone): raw k-space in HDF5, read slice
//! by slice and reconstructed into magnitude images the way fastMRI's own code does.
//!
//! A research group's first data set is the one it can download, and fastMRI's knee set is
//! the public one with both protocols this product serves: coronal PD (`CORPD_FBK`) and PD
//! fat-saturated (`CORPDFS_FBK`). Its files hold the acquired k-space, not images, so the
//! images are made here: an inverse FFT per coil with fastMRI's centring
//! (`fftshift(ifft2(ifftshift(k)))`, orthonormal), the coils combined by root-sum-of-squares
//! (one coil for the emulated single-coil files), cropped to the reconstruction matrix at the
//! centre. That is exactly what `reconstruction_rss` / `reconstruction_esc` hold, but those
//! are absent from the test split and cropped from a readout that is oversampled twofold, so
//! the k-space is the one source every file has.
//!
//! The layout, as published:
//! - `kspace`: complex64 (h5py's compound of two float32, `r` and `i`), `slices x coils x H x
//!   W` for multi-coil files, `slices x H x W` for single-coil ones;
//! - `reconstruction_rss` (multi-coil) or `reconstruction_esc` (single-coil): float32
//!   `slices x h x w`, absent from test files;
//! - `ismrmrd_header`: the MRD XML header, whose `encoding/reconSpace/matrixSize` gives the
//!   reconstruction matrix when no reconstruction dataset does;
//! - attributes `acquisition` (the protocol), `patient_id`, `max`, `norm`.
//!
//! fastMRI's PD and PDFS volumes are of different patients; a site that writes its own
//! protocols in this layout pairs them by `patient_id`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hdf5_pure::{Datatype, DatatypeByteOrder};
use ndarray::{Array2, s};
use num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::noise_map::PhaseEncoding;
use crate::{Error, Result};

/// fastMRI's knee k-space is `H x W` with the (twofold oversampled) readout along H and the
/// phase encoding along W: in the images the phase encoding runs left-right.
pub const PHASE_ENCODING: PhaseEncoding = PhaseEncoding::LeftRight;

/// The protocols of fastMRI's knee set this product denoises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// Coronal proton density, `CORPD_FBK`.
    Pd,
    /// Coronal proton density with fat saturation, `CORPDFS_FBK`.
    Pdfs,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Pd, Protocol::Pdfs];

    /// The `acquisition` attribute fastMRI gives a volume of this protocol.
    pub fn acquisition(self) -> &'static str {
        match self {
            Protocol::Pd => "CORPD_FBK",
            Protocol::Pdfs => "CORPDFS_FBK",
        }
    }

    /// The contrast's short name, as the project's folders and models name it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pd => "PD",
            Protocol::Pdfs => "PDFS",
        }
    }

    fn from_acquisition(value: &str) -> Option<Protocol> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.acquisition() == value.trim())
    }
}

/// One fastMRI file, open: what it holds, and its k-space ready to be read a slice at a time
/// (a multi-coil knee volume is about a gigabyte, so it is never read whole).
pub struct Volume {
    pub path: PathBuf,
    pub protocol: Protocol,
    /// The `patient_id` attribute, when the file has one.
    pub patient_id: Option<String>,
    pub slices: usize,
    /// Receive channels combined into each image (1 for a single-coil file).
    pub coils: usize,
    /// The k-space matrix of one coil, rows x columns (rows: the readout).
    pub kspace_dim: (usize, usize),
    /// The reconstruction matrix the images are cropped to, rows x columns.
    pub recon_dim: (usize, usize),
    kspace: hdf5_pure::Dataset,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("path", &self.path)
            .field("protocol", &self.protocol)
            .field("patient_id", &self.patient_id)
            .field("slices", &self.slices)
            .field("coils", &self.coils)
            .field("kspace_dim", &self.kspace_dim)
            .field("recon_dim", &self.recon_dim)
            .finish()
    }
}

fn fault(path: &Path, dataset: &str, reason: impl Into<String>) -> Error {
    Error::FastMri {
        path: path.into(),
        dataset: dataset.into(),
        reason: reason.into(),
    }
}

impl Volume {
    /// Opens `path` and checks its layout; every fault names the dataset or attribute.
    pub fn open(path: &Path) -> Result<Volume> {
        let file = hdf5_pure::File::open_streaming(path)
            .map_err(|e| fault(path, "file", format!("not readable as HDF5: {e}")))?;
        let root = file.root();
        let attrs = root
            .attrs()
            .map_err(|e| fault(path, "attributes", e.to_string()))?;
        let acquisition = attrs
            .get("acquisition")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                fault(
                    path,
                    "attribute acquisition",
                    "missing or not a string (fastMRI files name their protocol there)",
                )
            })?;
        let protocol = Protocol::from_acquisition(acquisition).ok_or_else(|| {
            fault(
                path,
                "attribute acquisition",
                format!(
                    "'{acquisition}' is not a knee protocol this product denoises \
                     (CORPD_FBK for PD, CORPDFS_FBK for PDFS)"
                ),
            )
        })?;
        let patient_id = attrs
            .get("patient_id")
            .and_then(|v| v.as_str())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let names = root
            .datasets()
            .map_err(|e| fault(path, "file", e.to_string()))?;
        if !names.iter().any(|n| n == "kspace") {
            return Err(fault(
                path,
                "kspace",
                format!("missing (the file holds {names:?})"),
            ));
        }
        let kspace = file
            .dataset("kspace")
            .map_err(|e| fault(path, "kspace", e.to_string()))?;
        check_complex64(path, &kspace)?;
        let shape = kspace
            .shape()
            .map_err(|e| fault(path, "kspace", e.to_string()))?;
        let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let (slices, coils, kspace_dim) = match dims[..] {
            [n, c, h, w] => (n, c, (h, w)),
            [n, h, w] => (n, 1, (h, w)),
            _ => {
                return Err(fault(
                    path,
                    "kspace",
                    format!(
                        "shape {dims:?}: expected slices x coils x H x W (multi-coil) or \
                         slices x H x W (single-coil)"
                    ),
                ));
            }
        };
        if slices == 0 || coils == 0 || kspace_dim.0 < 2 || kspace_dim.1 < 2 {
            return Err(fault(
                path,
                "kspace",
                format!("shape {dims:?} holds no image"),
            ));
        }
        let recon_dim = recon_dim(path, &file, &names, slices)?;
        if recon_dim.0 > kspace_dim.0 || recon_dim.1 > kspace_dim.1 {
            return Err(fault(
                path,
                "kspace",
                format!(
                    "the reconstruction matrix {recon_dim:?} is larger than the k-space \
                     matrix {kspace_dim:?}"
                ),
            ));
        }
        Ok(Volume {
            path: path.into(),
            protocol,
            patient_id,
            slices,
            coils,
            kspace_dim,
            recon_dim,
            kspace,
        })
    }

    /// Slice `index` reconstructed: the root-sum-of-squares of its coils' centred inverse
    /// FFTs, cropped to the reconstruction matrix at the centre (fastMRI's `center_crop`).
    pub fn slice(&self, index: usize, fft: &SliceFft) -> Result<Array2<f32>> {
        assert!(index < self.slices, "slice {index} of {}", self.slices);
        let raw = self
            .kspace
            .read_raw_rows(index as u64, 1)
            .map_err(|e| fault(&self.path, "kspace", format!("slice {index}: {e}")))?;
        let (h, w) = self.kspace_dim;
        if raw.len() != self.coils * h * w * 8 {
            return Err(fault(
                &self.path,
                "kspace",
                format!(
                    "slice {index}: {} bytes read, {} expected",
                    raw.len(),
                    self.coils * h * w * 8
                ),
            ));
        }
        let mut sum = Array2::<f32>::zeros((h, w));
        let mut coil = Array2::<Complex32>::zeros((h, w));
        for bytes in raw.chunks_exact(h * w * 8) {
            for (v, b) in coil.iter_mut().zip(bytes.chunks_exact(8)) {
                let f = |k: usize| f32::from_le_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]]);
                *v = Complex32::new(f(0), f(4));
            }
            fft.inverse_centred(&mut coil);
            ndarray::Zip::from(&mut sum)
                .and(&coil)
                .for_each(|s, c| *s += c.norm_sqr());
        }
        let (rh, rw) = self.recon_dim;
        let (top, left) = ((h - rh) / 2, (w - rw) / 2);
        Ok(sum
            .slice(s![top..top + rh, left..left + rw])
            .mapv(f32::sqrt))
    }
}

/// k-space must be complex64 as h5py writes it: a compound of two little-endian float32, the
/// real part first.
fn check_complex64(path: &Path, kspace: &hdf5_pure::Dataset) -> Result<()> {
    let dt = kspace
        .datatype()
        .map_err(|e| fault(path, "kspace", e.to_string()))?;
    let ok = match &dt {
        Datatype::Compound { size: 8, members } if members.len() == 2 => {
            members.iter().zip([0, 4]).all(|(m, at)| {
                m.byte_offset == at
                    && matches!(
                        m.datatype,
                        Datatype::FloatingPoint {
                            size: 4,
                            byte_order: DatatypeByteOrder::LittleEndian,
                            ..
                        }
                    )
            })
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(fault(
            path,
            "kspace",
            format!(
                "element type {}: expected complex64 (a compound of two little-endian float32)",
                describe(&dt)
            ),
        ))
    }
}

fn describe(dt: &Datatype) -> String {
    match dt {
        Datatype::FloatingPoint { size, .. } => format!("float{}", size * 8),
        Datatype::FixedPoint { size, .. } => format!("integer of {size} bytes"),
        Datatype::Compound { size, members } => format!(
            "compound of {size} bytes ({})",
            members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    }
}

/// The reconstruction matrix: the shape of `reconstruction_rss` or `reconstruction_esc`
/// when the file has one, else the header's `encoding/reconSpace/matrixSize` (`x` rows, `y`
/// columns, as fastMRI's loaders crop).
fn recon_dim(
    path: &Path,
    file: &hdf5_pure::File,
    names: &[String],
    slices: usize,
) -> Result<(usize, usize)> {
    for name in ["reconstruction_rss", "reconstruction_esc"] {
        if !names.iter().any(|n| n == name) {
            continue;
        }
        let shape = file
            .dataset(name)
            .and_then(|d| d.shape())
            .map_err(|e| fault(path, name, e.to_string()))?;
        return match shape[..] {
            [n, h, w] if n as usize == slices && h > 0 && w > 0 => Ok((h as usize, w as usize)),
            _ => Err(fault(
                path,
                name,
                format!("shape {shape:?}: expected {slices} slices x h x w, as kspace has"),
            )),
        };
    }
    if !names.iter().any(|n| n == "ismrmrd_header") {
        return Err(fault(
            path,
            "ismrmrd_header",
            "missing, and no reconstruction dataset gives the matrix either",
        ));
    }
    let xml = file
        .dataset("ismrmrd_header")
        .and_then(|d| d.read_string())
        .map_err(|e| fault(path, "ismrmrd_header", e.to_string()))?
        .concat();
    matrix_from_header(&xml).map_err(|reason| fault(path, "ismrmrd_header", reason))
}

/// `encoding/reconSpace/matrixSize/{x, y}` of an MRD XML header.
fn matrix_from_header(xml: &str) -> std::result::Result<(usize, usize), String> {
    let doc = roxmltree::Document::parse(xml.trim_end_matches('\0'))
        .map_err(|e| format!("not XML: {e}"))?;
    fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
        node.children()
            .find(|c| c.is_element() && c.tag_name().name() == name)
    }
    let matrix = child(doc.root_element(), "encoding")
        .and_then(|e| child(e, "reconSpace"))
        .and_then(|r| child(r, "matrixSize"))
        .ok_or("no encoding/reconSpace/matrixSize")?;
    let axis = |name: &str| -> std::result::Result<usize, String> {
        child(matrix, name)
            .and_then(|n| n.text())
            .and_then(|t| t.trim().parse().ok())
            .filter(|&v: &usize| v > 0)
            .ok_or(format!(
                "encoding/reconSpace/matrixSize/{name} is not a positive number"
            ))
    };
    Ok((axis("x")?, axis("y")?))
}

/// The inverse FFTs of one k-space matrix size, planned once for every slice of it.
pub struct SliceFft {
    /// The transform along each row (of the columns' count).
    along_rows: Arc<dyn Fft<f32>>,
    along_cols: Arc<dyn Fft<f32>>,
}

impl SliceFft {
    /// Plans the transforms of a `(rows, cols)` k-space.
    pub fn new((rows, cols): (usize, usize)) -> SliceFft {
        let mut planner = FftPlanner::new();
        SliceFft {
            along_rows: planner.plan_fft_inverse(cols),
            along_cols: planner.plan_fft_inverse(rows),
        }
    }

    /// `fftshift(ifft2(ifftshift(k), norm="ortho"))` in place: the centred, orthonormal
    /// inverse transform of fastMRI's `ifft2c`.
    pub fn inverse_centred(&self, k: &mut Array2<Complex32>) {
        let (h, w) = k.dim();
        assert_eq!(
            (h, w),
            (self.along_cols.len(), self.along_rows.len()),
            "planned for another size"
        );
        let mut line = vec![Complex32::default(); h.max(w)];
        for mut row in k.rows_mut() {
            let buf = &mut line[..w];
            buf.iter_mut().zip(row.iter()).for_each(|(b, v)| *b = *v);
            centred(buf, self.along_rows.as_ref());
            row.iter_mut().zip(buf.iter()).for_each(|(v, b)| *v = *b);
        }
        for mut col in k.columns_mut() {
            let buf = &mut line[..h];
            buf.iter_mut().zip(col.iter()).for_each(|(b, v)| *b = *v);
            centred(buf, self.along_cols.as_ref());
            col.iter_mut().zip(buf.iter()).for_each(|(v, b)| *v = *b);
        }
    }
}

/// One centred, orthonormal inverse transform: `ifftshift` (a rotation left by `n / 2`),
/// the transform scaled by `1 / sqrt(n)`, `fftshift` (a rotation right by `n / 2`).
fn centred(buf: &mut [Complex32], fft: &dyn Fft<f32>) {
    let n = buf.len();
    buf.rotate_left(n / 2);
    fft.process(buf);
    let scale = 1.0 / (n as f32).sqrt();
    buf.iter_mut().for_each(|v| *v *= scale);
    buf.rotate_right(n / 2);
}

/// Every `.h5` file directly in `dir`, opened, in name order.
pub fn open_folder(dir: &Path) -> Result<Vec<Volume>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("h5"))
            && path.is_file()
        {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(Error::Folder {
            path: dir.into(),
            reason: "holds no .h5 files (fastMRI's files, e.g. file1000001.h5, directly inside)"
                .into(),
        });
    }
    paths.sort();
    paths.iter().map(|p| Volume::open(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_centred_inverse_is_fastmris_ifft2c_on_odd_and_even_sizes() {
        // A point at the k-space centre is a flat image of 1 / sqrt(h w) (orthonormal),
        // and any k-space matches the definition of the centred transform element by
        // element.
        for (h, w) in [(4, 6), (5, 3), (6, 7)] {
            let mut k = Array2::<Complex32>::zeros((h, w));
            k[(h / 2, w / 2)] = Complex32::new(1.0, 0.0);
            SliceFft::new((h, w)).inverse_centred(&mut k);
            let flat = 1.0 / ((h * w) as f32).sqrt();
            for v in &k {
                assert!(
                    (v.re - flat).abs() < 1e-6 && v.im.abs() < 1e-6,
                    "{h}x{w}: {v}"
                );
            }
            // x[m, n] = sum K[a, b] e^{2 pi i (a' m' / h + b' n' / w)} / sqrt(h w), with
            // every index counted from its axis's centre (i' = i - floor(len / 2)).
            let k0 = Array2::from_shape_fn((h, w), |(i, j)| {
                Complex32::new((i * 7 + j * 3) as f32 % 5.0 - 2.0, (i + 2 * j) as f32 % 3.0)
            });
            let mut got = k0.clone();
            SliceFft::new((h, w)).inverse_centred(&mut got);
            let shifted = |i: usize, n: usize| i as f64 - (n / 2) as f64;
            for m in 0..h {
                for n in 0..w {
                    let mut want = num_complex::Complex64::default();
                    for ((a, b), v) in k0.indexed_iter() {
                        let phase = 2.0
                            * std::f64::consts::PI
                            * (shifted(a, h) * shifted(m, h) / h as f64
                                + shifted(b, w) * shifted(n, w) / w as f64);
                        want += num_complex::Complex64::new(f64::from(v.re), f64::from(v.im))
                            * num_complex::Complex64::from_polar(1.0, phase);
                    }
                    want /= ((h * w) as f64).sqrt();
                    let g = got[(m, n)];
                    assert!(
                        (f64::from(g.re) - want.re).abs() < 1e-4
                            && (f64::from(g.im) - want.im).abs() < 1e-4,
                        "{h}x{w} at ({m}, {n}): {g} against {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_header_gives_the_reconstruction_matrix() {
        let xml = "<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>640</x><y>368</y>\
                   </matrixSize></encodedSpace><reconSpace><matrixSize><x>320</x><y>300</y>\
                   <z>1</z></matrixSize></reconSpace></encoding></ismrmrdHeader>";
        assert_eq!(matrix_from_header(xml), Ok((320, 300)));
        let no_recon = "<ismrmrdHeader><encoding/></ismrmrdHeader>";
        assert!(
            matrix_from_header(no_recon)
                .unwrap_err()
                .contains("reconSpace")
        );
        let zero = xml.replace("<x>320</x>", "<x>0</x>");
        assert!(
            matrix_from_header(&zero)
                .unwrap_err()
                .contains("matrixSize/x")
        );
    }

    #[test]
    fn protocols_are_named_by_fastmris_acquisitions() {
        assert_eq!(Protocol::from_acquisition("CORPD_FBK"), Some(Protocol::Pd));
        assert_eq!(
            Protocol::from_acquisition("CORPDFS_FBK"),
            Some(Protocol::Pdfs)
        );
        assert_eq!(Protocol::from_acquisition("AXT2"), None);
    }
}
