//! Images out of an ISMRMRD / MRD HDF5 file (what Gadgetron and the FIRE clients record), so
//! a recorded series can be replayed to the daemon.
//!
//! The layout is `/<dataset>/<image group>/{header, attributes, data}`: `header` a compound
//! of `ISMRMRD_ImageHeader` records whose bytes are the wire header, `attributes` one
//! MetaContainer string per image, `data` the pixels `[N, channels, z, y, x]`. Read with
//! a pure-Rust HDF5 reader, so the box needs no libhdf5.

use std::path::{Path, PathBuf};

use crate::mrd::{Image, ImageHeader, TextEncoding};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct H5Error {
    pub path: PathBuf,
    pub reason: String,
}

/// Whether `path` is an HDF5 file (by its signature).
pub fn is_h5(path: &Path) -> bool {
    std::fs::File::open(path)
        .and_then(|mut f| {
            let mut sig = [0u8; 8];
            std::io::Read::read_exact(&mut f, &mut sig).map(|()| sig)
        })
        .is_ok_and(|sig| sig == *b"\x89HDF\r\n\x1a\n")
}

/// Every image of every image group, as `(group path, image)` in file order.
// Long: one walk of the file's groups, each dataset checked against the file before
// it is read (the checks need the walk's context).
pub fn read_images(path: &Path) -> Result<Vec<(String, Image)>, H5Error> {
    let err = |reason: String| H5Error {
        path: path.into(),
        reason,
    };
    let file_len = std::fs::metadata(path)
        .map_err(|e| err(e.to_string()))?
        .len();
    let file =
        hdf5_pure::File::open(path).map_err(|e| err(format!("not readable as HDF5: {e}")))?;
    let mut out = Vec::new();
    let tops = file.root().groups().map_err(|e| err(e.to_string()))?;
    for top in tops {
        let group = file.group(&top).map_err(|e| err(e.to_string()))?;
        for name in group.groups().map_err(|e| err(e.to_string()))? {
            let g = group.group(&name).map_err(|e| err(e.to_string()))?;
            let sets = g.datasets().map_err(|e| err(e.to_string()))?;
            if !["header", "data"]
                .iter()
                .all(|d| sets.iter().any(|s| s == d))
            {
                continue; // an acquisition or waveform group, or something else
            }
            let where_ = format!("{top}/{name}");
            // What a dataset declares is checked against the file before it is read: a
            // corrupt shape must fail as a bad file, not as an allocation of its claim
            // (deflate, the most a filter expands, stays within ~1032:1).
            let most = file_len.saturating_mul(1032);
            let open = |d: &str| {
                let set = g
                    .dataset(d)
                    .map_err(|e| err(format!("{where_}/{d}: {e}")))?;
                let declared = set
                    .shape()
                    .and_then(|shape| {
                        let size = set.element_size()?;
                        Ok(shape.iter().fold(size, |a, &n| a.saturating_mul(n)))
                    })
                    .map_err(|e| err(format!("{where_}/{d}: {e}")))?;
                if declared > most {
                    return Err(err(format!(
                        "{where_}/{d}: declares {declared} bytes, more than a {file_len}-byte file can hold"
                    )));
                }
                Ok(set)
            };
            let read = |d: &str| {
                open(d)?
                    .read_raw()
                    .map_err(|e| err(format!("{where_}/{d}: {e}")))
            };
            let headers = read("header")?;
            if headers.len() % ImageHeader::SIZE != 0 {
                return Err(err(format!(
                    "{where_}/header: {} bytes is not a whole number of {}-byte image headers",
                    headers.len(),
                    ImageHeader::SIZE
                )));
            }
            let n = headers.len() / ImageHeader::SIZE;
            let attributes = if sets.iter().any(|s| s == "attributes") {
                open("attributes")?
                    .read_string()
                    .map_err(|e| err(format!("{where_}/attributes: {e}")))?
            } else {
                vec![String::new(); n]
            };
            let data = read("data")?;
            if n == 0 || data.len() % n != 0 || attributes.len() != n {
                return Err(err(format!(
                    "{where_}: {n} headers, {} attribute strings and {} data bytes do not match",
                    attributes.len(),
                    data.len()
                )));
            }
            let per_image = data.len() / n;
            for (i, (h, pixels)) in headers
                .chunks_exact(ImageHeader::SIZE)
                .zip(data.chunks_exact(per_image))
                .enumerate()
            {
                let header = ImageHeader::read(h);
                let expected = header
                    .data_type()
                    .map(|d| header.pixel_count() * d.size() as u64);
                if expected != Some(per_image as u64) {
                    return Err(err(format!(
                        "{where_} image {i}: {per_image} data bytes for matrix {:?} x {} channels of data_type {}",
                        header.matrix_size, header.channels, header.data_type
                    )));
                }
                out.push((
                    where_.clone(),
                    Image {
                        header,
                        attributes: attributes[i].trim_end_matches('\0').to_owned(),
                        attribute_encoding: TextEncoding::Utf8,
                        data: pixels.to_vec(),
                    },
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(err("holds no MRD image groups (header + data)".into()));
    }
    Ok(out)
}
