//! fastMRI's knee files as training data (`data.source = "fastmri"`, docs/training.md).
//!
//! The files are opened and checked first, and which slices train and which validate is
//! decided from what they declare ([`Plan`]), so `crossdenoise check` reports exactly what a
//! run will read, and a run reads only those slices (a multi-coil volume is a gigabyte).
//!
//! - The contrast is the file's `acquisition`: `CORPD_FBK` is domain a (PD), `CORPDFS_FBK`
//!   domain b (PDFS), whatever `data.domains` calls them.
//! - The single-contrast model trains each contrast on its own volumes; fastMRI's PD and PDFS
//!   volumes are of different patients, so that is what its files train. The guided and the
//!   dual-domain networks need the other contrast *of the same slice*: they train on volumes
//!   paired by `patient_id` (a site's own protocols written in this layout), slice by slice.
//! - Validation holds out whole volumes (the last in name order, or `data.val_path`):
//!   neighbouring slices of one knee are too alike to test each other.
//! - `data.train_pairs` and `data.val_pairs` cap the slices per contrast, taken evenly across
//!   the volumes, so a folder of a thousand volumes trains in the memory of a workstation.
//! - One run has one noise distribution: every file must have the same coil count (the
//!   magnitude's floor is set by it) and reconstruction matrix.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crossdenoise_image::fastmri::{self, Protocol, SliceFft, Volume};
use crossdenoise_image::{Normalization, Padding};
use ndarray::Array2;

use super::sets::{Data, DataError, PairSet};
use crate::config::{Config, ModelKind};

/// One slice of one volume of a folder.
type At = (usize, usize);

/// Which slices of which volumes a set holds.
#[derive(Debug, Clone, PartialEq)]
enum Slices {
    /// Slice by slice partners: `(PD slice, PDFS slice)`.
    Paired(Vec<(At, At)>),
    /// Each contrast on its own (domain a, domain b).
    Apart([Vec<At>; 2]),
}

/// One folder's volumes, open.
#[derive(Debug)]
struct Folder {
    root: PathBuf,
    volumes: Vec<Volume>,
}

/// The slices a set takes from a folder's volumes.
#[derive(Debug)]
struct Part {
    slices: Slices,
    /// Volumes the set takes slices from, per contrast.
    used: [usize; 2],
}

/// What a run on fastMRI files will read: the training and validation slices, the coils.
#[derive(Debug)]
pub struct Plan {
    folder: Folder,
    /// `data.val_path`'s volumes; without it the validation slices are `folder`'s.
    val_folder: Option<Folder>,
    train: Part,
    val: Part,
    /// Receive channels of every file (1: Rician magnitudes).
    pub coils: u32,
    pub matrix: (usize, usize),
    /// Volumes left out for want of a partner of the same patient (paired models only).
    unpaired: [usize; 2],
}

impl Plan {
    /// Opens the config's folders and decides the sets, refusing what cannot train.
    pub fn new(config: &Config) -> Result<Plan, DataError> {
        let d = &config.data;
        let root = d
            .path
            .as_deref()
            .expect("validated: fastMRI data has a path");
        let paired = config.model.kind != ModelKind::Single;
        let volumes = fastmri::open_folder(root)?;
        let val_volumes = d
            .val_path
            .as_deref()
            .map(fastmri::open_folder)
            .transpose()?;
        let every: Vec<&Volume> = volumes.iter().chain(val_volumes.iter().flatten()).collect();
        let (coils, matrix) = one_kind(&every)?;
        let groups = |v: &[Volume], root: &Path| {
            let g = Groups::of(v, paired);
            g.check(root)?;
            Ok::<_, DataError>(g)
        };
        let g = groups(&volumes, root)?;
        let (train, val, val_folder) = match val_volumes {
            Some(val_volumes) => {
                let val_root = d.val_path.clone().expect("given");
                let v = groups(&val_volumes, &val_root)?;
                let val = Part::new(&val_volumes, &v, d.val_pairs);
                let val_folder = Folder {
                    root: val_root,
                    volumes: val_volumes,
                };
                (
                    Part::new(&volumes, &g, d.train_pairs),
                    val,
                    Some(val_folder),
                )
            }
            None => {
                let (keep, held) = g.hold_out(&volumes, d.val_pairs, root)?;
                let train = Part::new(&volumes, &keep, d.train_pairs);
                (train, Part::new(&volumes, &held, d.val_pairs), None)
            }
        };
        let unpaired = g.unpaired();
        Ok(Plan {
            folder: Folder {
                root: root.into(),
                volumes,
            },
            val_folder,
            train,
            val,
            coils,
            matrix,
            unpaired,
        })
    }

    /// Reads the planned slices: each reconstructed, normalised by its own scale and padded
    /// to a multiple of `multiple`.
    pub fn load(self, multiple: usize) -> Result<Data, DataError> {
        let mut ffts = HashMap::new();
        let train = read(&self.train, &self.folder.volumes, multiple, &mut ffts)?;
        let val_volumes = &self.val_folder.as_ref().unwrap_or(&self.folder).volumes;
        let val = read(&self.val, val_volumes, multiple, &mut ffts)?;
        Ok(Data {
            train,
            val,
            noise_coils: self.coils,
            phase_encoding: fastmri::PHASE_ENCODING,
        })
    }

    /// What `crossdenoise check` prints: the files found and what a run takes from them.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for folder in std::iter::once(&self.folder).chain(&self.val_folder) {
            let count = |p: Protocol| {
                let v: Vec<&Volume> = folder.volumes.iter().filter(|v| v.protocol == p).collect();
                let slices: usize = v.iter().map(|v| v.slices).sum();
                format!("{} {} ({slices} slices)", v.len(), p.name())
            };
            let _ = writeln!(
                s,
                "fastMRI files in {}: {} volumes, {} and {}",
                folder.root.display(),
                folder.volumes.len(),
                count(Protocol::Pd),
                count(Protocol::Pdfs)
            );
        }
        let coils = match self.coils {
            1 => "1 coil (single-coil files: Rician noise)".to_owned(),
            n => format!("{n} coils combined by root-sum-of-squares (noncentral chi noise)"),
        };
        let (h, w) = self.matrix;
        let _ = writeln!(s, "  {coils}; reconstructed at {h} x {w}");
        if let [pd, pdfs] = self.unpaired
            && pd + pdfs > 0
        {
            let _ = writeln!(
                s,
                "  left out: {pd} PD and {pdfs} PDFS volumes without a partner of the same \
                 patient_id"
            );
        }
        for (what, part) in [("training", &self.train), ("validation", &self.val)] {
            let line = match &part.slices {
                Slices::Paired(p) => format!(
                    "{} slice pairs from {} (paired by patient_id)",
                    p.len(),
                    volumes(part.used[0], "pair of volumes", "pairs of volumes")
                ),
                Slices::Apart([a, b]) => format!(
                    "{} PD slices from {}, {} PDFS slices from {}",
                    a.len(),
                    volumes(part.used[0], "volume", "volumes"),
                    b.len(),
                    volumes(part.used[1], "volume", "volumes")
                ),
            };
            let _ = writeln!(s, "  {what}: {line}");
        }
        s
    }
}

fn volumes(n: usize, one: &str, more: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { more })
}

/// The coil count and reconstruction matrix every file shares.
fn one_kind(volumes: &[&Volume]) -> Result<(u32, (usize, usize)), DataError> {
    let first = volumes[0];
    for v in volumes {
        let differs = |what: &str, this: String, that: String| DataError::Invalid {
            path: v.path.clone(),
            reason: format!(
                "{what} {this}, but {} has {that}: one run trains on one kind of image; keep \
                 the others in another folder",
                first.path.display()
            ),
        };
        if v.coils != first.coils {
            return Err(differs(
                "coils",
                v.coils.to_string(),
                first.coils.to_string(),
            ));
        }
        if v.recon_dim != first.recon_dim {
            let m = |(h, w): (usize, usize)| format!("{h} x {w}");
            return Err(differs(
                "reconstruction matrix",
                m(v.recon_dim),
                m(first.recon_dim),
            ));
        }
    }
    let coils = u32::try_from(first.coils).map_err(|_| DataError::Invalid {
        path: first.path.clone(),
        reason: format!("{} coils", first.coils),
    })?;
    Ok((coils, first.recon_dim))
}

/// A folder's volumes, grouped as a model trains on them.
#[derive(Debug, Clone)]
enum Groups {
    /// Volume pairs `(PD, PDFS)` of one patient (the guided and dual-domain networks), and
    /// how many volumes of each contrast found no partner.
    Paired {
        pairs: Vec<(usize, usize)>,
        unpaired: [usize; 2],
    },
    /// Each contrast's volumes (the single-contrast model).
    Apart([Vec<usize>; 2]),
}

impl Groups {
    fn of(volumes: &[Volume], paired: bool) -> Groups {
        let of = |p: Protocol| -> Vec<usize> {
            (0..volumes.len())
                .filter(|&i| volumes[i].protocol == p)
                .collect()
        };
        let (pd, pdfs) = (of(Protocol::Pd), of(Protocol::Pdfs));
        if !paired {
            return Groups::Apart([pd, pdfs]);
        }
        // Each PD volume takes the first PDFS volume of its patient not taken yet.
        let mut taken = vec![false; volumes.len()];
        let mut pairs = Vec::new();
        for &a in &pd {
            let Some(patient) = &volumes[a].patient_id else {
                continue;
            };
            if let Some(&b) = pdfs
                .iter()
                .find(|&&b| !taken[b] && volumes[b].patient_id.as_ref() == Some(patient))
            {
                taken[a] = true;
                taken[b] = true;
                pairs.push((a, b));
            }
        }
        let left = |list: &[usize]| list.iter().filter(|&&i| !taken[i]).count();
        Groups::Paired {
            unpaired: [left(&pd), left(&pdfs)],
            pairs,
        }
    }

    /// The volumes of each contrast that found no partner (none when apart).
    fn unpaired(&self) -> [usize; 2] {
        match self {
            Groups::Paired { unpaired, .. } => *unpaired,
            Groups::Apart(_) => [0, 0],
        }
    }

    fn check(&self, root: &Path) -> Result<(), DataError> {
        let invalid = |reason: String| DataError::Invalid {
            path: root.into(),
            reason,
        };
        match self {
            Groups::Paired { pairs, .. } if pairs.is_empty() => Err(invalid(
                "no PD (CORPD_FBK) and PDFS (CORPDFS_FBK) volumes of the same patient_id: the \
                 guided and dual-domain networks learn from both contrasts of one slice. \
                 fastMRI's own PD and PDFS volumes are of different patients; train the \
                 single-contrast model on them (configs/single.json)"
                    .into(),
            )),
            Groups::Paired { .. } => Ok(()),
            Groups::Apart(lists) => {
                for (p, list) in Protocol::ALL.iter().zip(lists) {
                    if list.is_empty() {
                        return Err(invalid(format!(
                            "no {} volume ({}): the single-contrast model trains one network \
                             per contrast, both",
                            p.name(),
                            p.acquisition()
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    /// Splits off the last volumes (in name order) until `want` slices are held out in each
    /// contrast, keeping at least one volume of each to train on.
    fn hold_out(
        &self,
        volumes: &[Volume],
        want: usize,
        root: &Path,
    ) -> Result<(Groups, Groups), DataError> {
        let split = |list: &[usize]| -> Option<usize> {
            let mut held = 0;
            for (n, &i) in list.iter().enumerate().rev() {
                held += volumes[i].slices;
                if held >= want {
                    return (n > 0).then_some(n);
                }
            }
            None
        };
        let short = || DataError::Invalid {
            path: root.into(),
            reason: format!(
                "too few volumes to hold out data.val_pairs = {want} slices for validation \
                 (whole volumes) and still train: add volumes, lower data.val_pairs or give \
                 data.val_path"
            ),
        };
        match self {
            Groups::Apart(lists) => {
                let mut keep = lists.clone();
                let mut held: [Vec<usize>; 2] = Default::default();
                for k in 0..2 {
                    let at = split(&lists[k]).ok_or_else(short)?;
                    held[k] = keep[k].split_off(at);
                }
                Ok((Groups::Apart(keep), Groups::Apart(held)))
            }
            Groups::Paired { pairs, unpaired } => {
                let firsts: Vec<usize> = pairs.iter().map(|p| p.0).collect();
                let at = split(&firsts).ok_or_else(short)?;
                let mut keep = pairs.clone();
                let held = keep.split_off(at);
                Ok((
                    Groups::Paired {
                        pairs: keep,
                        unpaired: *unpaired,
                    },
                    Groups::Paired {
                        pairs: held,
                        unpaired: [0, 0],
                    },
                ))
            }
        }
    }

    fn used(&self) -> [usize; 2] {
        match self {
            Groups::Apart(lists) => [lists[0].len(), lists[1].len()],
            Groups::Paired { pairs, .. } => [pairs.len(); 2],
        }
    }

    /// At most `cap` slices per contrast, evenly across the volumes.
    fn slices(&self, volumes: &[Volume], cap: usize) -> Slices {
        let every = |i: usize| (0..volumes[i].slices).map(move |s| (i, s));
        match self {
            Groups::Apart(lists) => {
                let pick =
                    |list: &[usize]| evenly(list.iter().flat_map(|&i| every(i)).collect(), cap);
                Slices::Apart([pick(&lists[0]), pick(&lists[1])])
            }
            Groups::Paired { pairs, .. } => {
                let all = pairs
                    .iter()
                    .flat_map(|&(a, b)| every(a).zip(every(b)))
                    .collect();
                Slices::Paired(evenly(all, cap))
            }
        }
    }
}

impl Part {
    fn new(volumes: &[Volume], groups: &Groups, cap: usize) -> Part {
        Part {
            slices: groups.slices(volumes, cap),
            used: groups.used(),
        }
    }
}

/// `cap` items spread evenly over `all` (all of them when there are no more).
fn evenly<T: Copy>(all: Vec<T>, cap: usize) -> Vec<T> {
    if all.len() <= cap {
        return all;
    }
    (0..cap).map(|k| all[k * all.len() / cap]).collect()
}

fn read(
    part: &Part,
    volumes: &[Volume],
    multiple: usize,
    ffts: &mut HashMap<(usize, usize), SliceFft>,
) -> Result<PairSet, DataError> {
    let norm = Normalization::default();
    let mut one = |(v, s): At| -> Result<(Array2<f32>, String), DataError> {
        let volume = &volumes[v];
        let fft = ffts
            .entry(volume.kspace_dim)
            .or_insert_with(|| SliceFft::new(volume.kspace_dim));
        let image = volume.slice(s, fft)?;
        let (n, _) = norm.normalize(image.view())?;
        let pad = Padding::to_multiple(n.nrows(), n.ncols(), multiple)?;
        let stem = volume
            .path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy();
        Ok((pad.pad(n.view()), format!("{stem}/{s:03}")))
    };
    let mut set = PairSet::acquired();
    match &part.slices {
        Slices::Paired(pairs) => {
            for &(at_a, at_b) in pairs {
                let ((a, name), (b, _)) = (one(at_a)?, one(at_b)?);
                set.a.push(a);
                set.b.push(b);
                set.names.push(name);
            }
        }
        Slices::Apart([list_a, list_b]) => {
            // Each contrast trains its own network, so the shorter list repeats to pair up
            // with the longer: every slice of both is used, neither weighs the other.
            set.paired = false;
            let a = list_a
                .iter()
                .map(|&at| one(at))
                .collect::<Result<Vec<_>, _>>()?;
            let b = list_b
                .iter()
                .map(|&at| one(at))
                .collect::<Result<Vec<_>, _>>()?;
            for k in 0..a.len().max(b.len()) {
                let (ia, na) = &a[k % a.len()];
                let (ib, nb) = &b[k % b.len()];
                set.a.push(ia.clone());
                set.b.push(ib.clone());
                set.names.push(format!("{na}+{nb}"));
            }
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenly_takes_every_kth_and_all_when_short() {
        assert_eq!(evenly((0..10).collect(), 4), [0, 2, 5, 7]);
        assert_eq!(evenly((0..3).collect(), 4), [0, 1, 2]);
    }
}
