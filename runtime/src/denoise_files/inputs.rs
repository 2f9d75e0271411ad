//! Which files a run denoises, which guide each takes, and where their results may go.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::{Error, Result};
use crossdenoise_image::Error as ImageError;
use crossdenoise_image::dicom::{self, DicomSlice};
use crossdenoise_image::io::{self, Format};

/// One file to denoise and where its result goes, relative to the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    pub output: PathBuf,
    pub format: Format,
}

/// Expands files and folders (a folder: its image files, not recursive, in name order) into
/// the files to denoise. A file's result keeps its name; a folder's results go into a
/// subfolder of the same name, so a DICOM series stays a series.
pub fn collect_inputs(inputs: &[PathBuf]) -> Result<Vec<InputFile>> {
    if inputs.is_empty() {
        return Err(Error::Image(ImageError::Invalid {
            what: "inputs",
            reason: "no input files or folders given".into(),
        }));
    }
    let mut files = Vec::new();
    for input in inputs {
        let meta = fs::metadata(input).map_err(|e| Error::io(input, e))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = fs::read_dir(input)
                .map_err(|e| Error::io(input, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !is_hidden(p) && !is_dicomdir(p))
                .filter(|p| Format::of(p).is_ok())
                .collect();
            entries.sort();
            if entries.is_empty() {
                return Err(Error::Image(ImageError::Folder {
                    path: input.clone(),
                    reason: "holds no .npy, .png or DICOM files".into(),
                }));
            }
            let folder = input
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("input"));
            for path in entries {
                let format = Format::of(&path)?;
                let name = path.file_name().expect("a listed file has a name");
                files.push(InputFile {
                    output: folder.join(name),
                    path,
                    format,
                });
            }
        } else {
            let format = Format::of(input)?;
            let name = input.file_name().ok_or_else(|| {
                Error::Image(ImageError::Invalid {
                    what: "input",
                    reason: format!("{}: not a file name", input.display()),
                })
            })?;
            files.push(InputFile {
                output: PathBuf::from(name),
                path: input.clone(),
                format,
            });
        }
    }
    let mut seen = HashMap::new();
    for f in &files {
        if let Some(other) = seen.insert(f.output.clone(), f.path.clone()) {
            return Err(Error::Image(ImageError::Invalid {
                what: "inputs",
                reason: format!(
                    "{} and {} would both be written to {}; denoise them separately",
                    other.display(),
                    f.path.display(),
                    f.output.display()
                ),
            }));
        }
    }
    Ok(files)
}

/// The guide of each input, from `guides`: the file of the same name for .npy and .png, the
/// slice at the same place for DICOM (same frame of reference and orientation, position
/// within half a slice thickness; the nearest when several are). Every input without a
/// guide, and every pair whose sizes differ, is listed in one error.
pub fn pair_guides(inputs: &[InputFile], guides: &[InputFile]) -> Result<Vec<PathBuf>> {
    let matched = match_guides(inputs, guides);
    let mut problems = matched.guide_problems;
    let mut paired = Vec::with_capacity(inputs.len());
    for found in matched.guides {
        match found {
            Ok(guide) => paired.push(guide),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(paired)
    } else {
        Err(Error::Pairing { problems })
    }
}

/// What [`match_guides`] found: per input its guide or why it has none, and the guides that
/// could not be read.
#[derive(Debug)]
pub struct MatchedGuides {
    pub guides: Vec<std::result::Result<PathBuf, String>>,
    pub guide_problems: Vec<String>,
}

/// [`pair_guides`] input by input: a series with slices its partner does not cover (a PDFS
/// series of fewer slices than its PD partner) can still be guided where it is covered.
pub fn match_guides(inputs: &[InputFile], guides: &[InputFile]) -> MatchedGuides {
    let mut problems = Vec::new();
    let by_name: HashMap<&std::ffi::OsStr, &InputFile> = guides
        .iter()
        .filter(|g| g.format != Format::Dicom)
        .filter_map(|g| g.path.file_name().map(|n| (n, g)))
        .collect();
    let mut dicom_guides = Vec::new();
    for g in guides.iter().filter(|g| g.format == Format::Dicom) {
        match DicomSlice::read(&g.path) {
            Ok(slice) => match slice.geometry() {
                Some(geo) => dicom_guides.push((g, geo, slice.image.dim())),
                None => problems.push(format!(
                    "guide {}: no slice geometry (FrameOfReferenceUID, ImageOrientationPatient, \
                     ImagePositionPatient, SliceThickness)",
                    g.path.display()
                )),
            },
            Err(e) => problems.push(format!("guide {e}")),
        }
    }
    let guides = inputs
        .iter()
        .map(|input| {
            if input.format == Format::Dicom {
                pair_dicom(input, &dicom_guides)
            } else {
                pair_by_name(input, &by_name)
            }
        })
        .collect();
    MatchedGuides {
        guides,
        guide_problems: problems,
    }
}

fn pair_by_name(
    input: &InputFile,
    guides: &HashMap<&std::ffi::OsStr, &InputFile>,
) -> std::result::Result<PathBuf, String> {
    let name = input.path.file_name().unwrap_or_default();
    let Some(guide) = guides.get(name) else {
        return Err(format!(
            "{}: no guide named {} among the --guide files",
            input.path.display(),
            name.to_string_lossy()
        ));
    };
    let dims = |f: &InputFile| -> std::result::Result<(usize, usize), String> {
        match f.format {
            Format::Npy => io::read_npy(&f.path).map(|a| a.dim()),
            _ => io::read_png(&f.path).map(|g| g.dim()),
        }
        .map_err(|e| e.to_string())
    };
    let (a, b) = (dims(input)?, dims(guide)?);
    if a != b {
        return Err(format!(
            "{}: {}x{}, but its guide {} is {}x{}",
            input.path.display(),
            a.0,
            a.1,
            guide.path.display(),
            b.0,
            b.1
        ));
    }
    Ok(guide.path.clone())
}

fn pair_dicom(
    input: &InputFile,
    guides: &[(&InputFile, dicom::Geometry, (usize, usize))],
) -> std::result::Result<PathBuf, String> {
    let slice = DicomSlice::read(&input.path).map_err(|e| e.to_string())?;
    let Some(geo) = slice.geometry() else {
        return Err(format!(
            "{}: no slice geometry (FrameOfReferenceUID, ImageOrientationPatient, \
             ImagePositionPatient, SliceThickness) to find its guide by",
            input.path.display()
        ));
    };
    let nearest = guides
        .iter()
        .filter(|(_, g, _)| geo.same_slice(g))
        .min_by(|a, b| {
            let d = |g: &dicom::Geometry| geo.distance(g).unwrap_or(f64::INFINITY);
            d(&a.1).total_cmp(&d(&b.1))
        });
    let Some((guide, _, dim)) = nearest else {
        return Err(format!(
            "{}: no guide slice in frame of reference {} with its orientation within {:.2} mm \
             of position ({:.1}, {:.1}, {:.1})",
            input.path.display(),
            geo.frame_of_reference,
            0.5 * geo.thickness,
            geo.position[0],
            geo.position[1],
            geo.position[2]
        ));
    };
    if *dim != slice.image.dim() {
        return Err(format!(
            "{}: {}x{}, but its guide {} is {}x{}",
            input.path.display(),
            slice.image.nrows(),
            slice.image.ncols(),
            guide.path.display(),
            dim.0,
            dim.1
        ));
    }
    Ok(guide.path.clone())
}

/// Refuses an output folder that is a folder holding an input, or any output name that is
/// an input's: results would overwrite inputs, and a second run would denoise them again.
pub fn check_output_dir(out: &Path, inputs: &[InputFile]) -> Result<()> {
    let out_abs = absolute(out);
    let mut dirs = HashSet::new();
    for f in inputs {
        if let Some(parent) = absolute(&f.path).parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    for dir in dirs {
        if out_abs == dir {
            return Err(Error::Image(ImageError::Invalid {
                what: "--out",
                reason: format!(
                    "{} is an input folder; choose another folder (inputs are never written over)",
                    out.display()
                ),
            }));
        }
    }
    let input_paths: HashSet<PathBuf> = inputs.iter().map(|f| absolute(&f.path)).collect();
    for f in inputs {
        if input_paths.contains(&absolute(&out_abs.join(&f.output))) {
            return Err(Error::Image(ImageError::Invalid {
                what: "--out",
                reason: format!(
                    "{} would overwrite an input with the result of {}",
                    out.display(),
                    f.path.display()
                ),
            }));
        }
    }
    Ok(())
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_dicomdir(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.eq_ignore_ascii_case("DICOMDIR"))
}

fn absolute(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}
