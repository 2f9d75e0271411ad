//! fastMRI's knee files: the reader against fastMRI's own reconstruction, a wrong layout
//! refused by the dataset at fault, `check` reporting a folder, and both denoisers trained on
//! files written in the published layout (by h5py, in `reference.py fastmri`).

use std::path::{Path, PathBuf};
use std::process::Output;

use crossdenoise_image::fastmri::{Protocol, SliceFft, Volume};

use crate::util::{TINY_GUIDED, crossdenoise, export, reference, refused, stderr};

/// Noise-free 32 x 32 phantom slices (`crossdenoise phantoms`): six of each contrast.
fn clean_slices(dir: &Path) -> [Vec<String>; 2] {
    let out = crossdenoise(
        &["phantoms", "--out", "p", "--pairs", "6", "--size", "32"],
        dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    ["pd", "pdfs"].map(|c| {
        let mut files: Vec<String> = std::fs::read_dir(dir.join("p/clean").join(c))
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .collect();
        files.sort();
        files
    })
}

/// `reference.py fastmri OUT SLICES... ARGS...`.
fn write(out: &Path, slices: &[String], args: &[&str]) -> PathBuf {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut a = vec!["fastmri".to_owned(), out.display().to_string()];
    a.extend(slices.iter().cloned());
    a.extend(args.iter().map(|s| s.to_string()));
    reference(&a);
    out.to_path_buf()
}

/// `paired/`: two patients, each a single-coil PD and PDFS volume of three slices (the
/// guided network's data); `apart/`: four-coil volumes, two PD and two PDFS of four
/// patients (fastMRI's own kind).
fn folders(dir: &Path) -> (PathBuf, PathBuf) {
    let [pd, pdfs] = clean_slices(dir);
    let paired = dir.join("paired");
    for (patient, range) in [("A", 0..3), ("B", 3..6)] {
        for (name, acq, src) in [("pd", "CORPD_FBK", &pd), ("pdfs", "CORPDFS_FBK", &pdfs)] {
            let file = paired.join(format!("{patient}_{name}.h5"));
            let args = ["--acquisition", acq, "--coils", "0", "--patient", patient];
            write(&file, &src[range.clone()], &args);
        }
    }
    let apart = dir.join("apart");
    for (k, (acq, src)) in [
        ("CORPD_FBK", &pd),
        ("CORPD_FBK", &pd),
        ("CORPDFS_FBK", &pdfs),
        ("CORPDFS_FBK", &pdfs),
    ]
    .into_iter()
    .enumerate()
    {
        let file = apart.join(format!("file{k}.h5"));
        let (patient, seed) = (format!("X{k}"), k.to_string());
        let args = ["--acquisition", acq, "--patient", &patient, "--seed", &seed];
        write(&file, &src[3 * (k % 2)..3 * (k % 2) + 3], &args);
    }
    (paired, apart)
}

fn recon(path: &Path, name: &str) -> Vec<f32> {
    let file = hdf5_pure::File::open(path).unwrap();
    file.dataset(name).unwrap().read_f32().unwrap()
}

#[test]
fn slices_are_fastmris_own_reconstruction() {
    let dir = tempfile::tempdir().unwrap();
    let [pd, _] = clean_slices(dir.path());
    let multi = write(&dir.path().join("m.h5"), &pd[..2], &["--coils", "4"]);
    let single = write(
        &dir.path().join("s.h5"),
        &pd[..2],
        &["--coils", "0", "--acquisition", "CORPDFS_FBK"],
    );
    // The test split's layout: no reconstruction, the matrix from the header alone.
    let bare = write(
        &dir.path().join("b.h5"),
        &pd[..2],
        &["--coils", "4", "--no-recon"],
    );
    for (path, dataset, coils, protocol) in [
        (&multi, "reconstruction_rss", 4, Protocol::Pd),
        (&single, "reconstruction_esc", 1, Protocol::Pdfs),
    ] {
        let v = Volume::open(path).unwrap();
        assert_eq!(
            (v.slices, v.coils, v.kspace_dim, v.recon_dim, v.protocol),
            (2, coils, (64, 40), (32, 32), protocol)
        );
        assert_eq!(v.patient_id.as_deref(), Some("P0001"));
        let want = recon(path, dataset);
        let fft = SliceFft::new(v.kspace_dim);
        for k in 0..2 {
            let got = v.slice(k, &fft).unwrap();
            let want = &want[k * 32 * 32..(k + 1) * 32 * 32];
            let scale = want.iter().copied().fold(0.0f32, f32::max);
            let worst = got
                .iter()
                .zip(want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4 * scale, "{dataset} slice {k}: off by {worst}");
        }
    }
    let v = Volume::open(&bare).unwrap();
    assert_eq!(v.recon_dim, (32, 32));
    let same = Volume::open(&multi).unwrap();
    let fft = SliceFft::new(v.kspace_dim);
    assert_eq!(v.slice(1, &fft).unwrap(), same.slice(1, &fft).unwrap());
}

#[test]
fn a_wrong_layout_is_refused_naming_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let [pd, _] = clean_slices(dir.path());
    let one = &pd[..1];
    let cases: [(&[&str], &str); 4] = [
        (
            &["--layout", "float-kspace"],
            "kspace: element type float32: expected complex64",
        ),
        (
            &["--layout", "no-acquisition"],
            "attribute acquisition: missing",
        ),
        (
            &["--acquisition", "AXT2"],
            "attribute acquisition: 'AXT2' is not a knee protocol",
        ),
        (
            &["--layout", "no-header", "--no-recon"],
            "ismrmrd_header: missing",
        ),
    ];
    for (k, (args, want)) in cases.into_iter().enumerate() {
        let path = write(&dir.path().join(format!("bad{k}.h5")), one, args);
        let err = Volume::open(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&path.display().to_string()) && err.contains(want),
            "{err}"
        );
    }
    // Through `check`, a folder with one bad file names that file.
    let folder = dir.path().join("mixed");
    write(&folder.join("a.h5"), one, &[]);
    write(&folder.join("b.h5"), one, &["--layout", "float-kspace"]);
    let out = check("single", &folder, &[], dir.path());
    refused(&out, "b.h5: kspace: element type float32");
    // A folder that is not there is said once, with its path.
    let out = check("single", &dir.path().join("nowhere"), &[], dir.path());
    let err = stderr(&out);
    assert!(err.contains("nowhere: No such file or directory"), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

/// `crossdenoise COMMAND configs/CONFIG.json --set data.source=fastmri --set
/// data.path=DATA` with `args` after them, in `cwd`.
fn on_files(command: &str, config: &str, data: &Path, args: &[&str], cwd: &Path) -> Output {
    let file = crate::support::workspace_root().join(format!("configs/{config}.json"));
    let path = format!("data.path={}", serde_json::to_string(data).unwrap());
    let mut all = vec![
        command,
        file.to_str().unwrap(),
        "--set",
        "data.source=fastmri",
        "--set",
        &path,
    ];
    all.extend(args);
    crossdenoise(&all, cwd)
}

fn check(config: &str, data: &Path, sets: &[&str], cwd: &Path) -> Output {
    let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
    on_files("check", config, data, &args, cwd)
}

#[test]
fn check_reports_the_files_and_what_a_run_takes() {
    let dir = tempfile::tempdir().unwrap();
    let (paired, apart) = folders(dir.path());
    let sets = ["data.val_pairs=2"];

    let out = check("single", &apart, &sets, dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("4 volumes, 2 PD (6 slices) and 2 PDFS (6 slices)"),
        "{text}"
    );
    assert!(
        text.contains("4 coils combined by root-sum-of-squares"),
        "{text}"
    );
    assert!(text.contains("reconstructed at 32 x 32"), "{text}");
    // Whole volumes held out: the last PD and the last PDFS volume.
    assert!(
        text.contains("training: 3 PD slices from 1 volume, 3 PDFS slices from 1 volume"),
        "{text}"
    );
    assert!(
        text.contains("validation: 2 PD slices from 1 volume"),
        "{text}"
    );

    let out = check("guided", &paired, &["data.val_pairs=2"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("1 coil (single-coil files: Rician noise)"),
        "{text}"
    );
    assert!(
        text.contains("training: 3 slice pairs from 1 pair of volumes (paired by patient_id)"),
        "{text}"
    );

    // fastMRI's own volumes are of different patients: no guide for them.
    let out = check("guided", &apart, &sets, dir.path());
    refused(&out, "configs/single.json");
}

/// `train` at the tiny size of the end-to-end tests, one epoch; returns the run folder.
fn train(config: &str, data: &Path, sets: &[&str], cwd: &Path) -> PathBuf {
    let mut args = vec!["--out", "runs", "--epochs", "1"];
    for s in TINY_GUIDED.iter().chain(sets) {
        args.extend(["--set", s]);
    }
    let out = on_files("train", config, data, &args, cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    cwd.join("runs").join(config)
}

#[test]
fn both_denoisers_train_on_fastmri_files() {
    let dir = tempfile::tempdir().unwrap();
    let (paired, apart) = folders(dir.path());

    // The guided network on a site's paired single-coil volumes, posterior step included.
    let run = train("guided", &paired, &[], dir.path());
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(summary.contains("\"epochs_done\": 1"), "{summary}");

    // The single-contrast model on fastMRI's unpaired four-coil volumes, with the posterior
    // step under the noncentral chi likelihood; the model it exports is for four-coil
    // noise, and says so.
    let run = train("single", &apart, &[], dir.path());
    let model = dir.path().join("pd.onnx");
    export(&run, &model, &["--to", "a"]);
    // The files' slices as the project's folders: what the model is then served on.
    let out = crossdenoise(&["fastmri", "apart", "--out", "slices"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("file0.h5: PD (CORPD_FBK), patient X0, 3 slices, 4 coils"),
        "{said}"
    );
    assert!(said.contains("--noise map --coils 4"), "{said}");
    let written = crossdenoise_image::io::read_slice(&dir.path().join("slices/pdfs/file3_001.npy"));
    let volume = Volume::open(&apart.join("file3.h5")).unwrap();
    let fft = SliceFft::new(volume.kspace_dim);
    assert_eq!(written.unwrap(), volume.slice(1, &fft).unwrap());
    assert!(dir.path().join("slices/preview.png").is_file());
    let again = crossdenoise(&["fastmri", "apart", "--out", "slices"], dir.path());
    assert!(!again.status.success() && stderr(&again).contains("--force"));
    let slice = dir.path().join("slices/pd");
    let denoise = |extra: &[&str]| {
        let mut args = vec!["denoise", "--model", model.to_str().unwrap(), "--out", "o"];
        args.extend(extra);
        args.push(slice.to_str().unwrap());
        crossdenoise(&args, dir.path())
    };
    let out = denoise(&[]);
    refused(&out, "4 coils");
    let out = denoise(&["--noise", "map", "--coils", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
