//! What a PACS administrator needs of the node beyond delivering a study: the right contrast
//! or none, one patient per pair, nothing acknowledged lost to a full disk or a slow
//! sender, and one stored instance per UID. Real DCMTK peers (`storescu`, `storescp`) where
//! the protocol is theirs; a sender of our own where the case needs pauses between slices.

mod node;
use crossdenoise_test_support as support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crossdenoise_host::mrd::config::{Destination, OnConflict, OtherSeries};
use dicom_dictionary_std::tags;
use node::*;
use support::{Storescp, dicom_series, free_port, phantom_pairs, phantom_slices};

/// A series of `slices` described `description`, with extra `reference.py dicom-series`
/// flags, in `dir/<name>`.
fn series_with(
    dir: &Path,
    name: &str,
    description: &str,
    slices: &[ndarray::Array2<f32>],
    flags: &[&str],
) -> Vec<PathBuf> {
    let mut all = vec![
        format!("--description={description}"),
        format!("--protocol={description}"),
        "--study=1.2.826.0.1.3680043.8.498.60".to_string(),
        "--frame=1.2.826.0.1.3680043.8.498.61".to_string(),
    ];
    all.extend(flags.iter().map(|f| f.to_string()));
    dicom_series(&dir.join(name), "s16", slices, &all)
}

/// The failed/ folder's reasons.
fn reasons(spool: &Path) -> Vec<String> {
    std::fs::read_dir(spool.join("failed"))
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().ends_with(".reason.txt"))
                .map(|p| std::fs::read_to_string(p).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// A counter or gauge of the node's /metrics text.
fn metric(node: &Running, name: &str) -> u64 {
    let text = node.node.prometheus();
    let line = format!("crossdenoise_dicom_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// What came in is accounted for: every instance received was stored, acknowledged as a
/// duplicate or refused; every one stored was denoised, passed on, set aside or still waits.
fn assert_balanced(node: &Running) {
    let m = |name| metric(node, name);
    assert_eq!(
        m("instances_received_total"),
        m("instances_stored_total") + m("instances_duplicate_total") + m("instances_refused_total")
    );
    assert_eq!(
        m("instances_stored_total"),
        m("instances_denoised_total")
            + m("instances_passed_on_total")
            + m("instances_set_aside_total")
            + m("spool_depth")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_contrasts_are_passed_on_unchanged_and_never_denoised() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pd_alone = support::test_model(d, "pd_single.onnx", &["--contrast", "pd"]);
    let pdfs_alone = support::test_model(d, "pdfs_single.onnx", &["--contrast", "pdfs"]);
    let (mut node, pacs) = node_and_pacs(d, |c| {
        c.models.pd_alone = Some(pd_alone);
        c.models.pdfs_alone = Some(pdfs_alone);
        c.other_series = OtherSeries::PassOn;
    })
    .await;
    let (pd_slices, slices) = phantom_pairs(2, 48, 40);
    let mut files = Vec::new();
    let others = ["T2_TSE_FS_COR", "T2_TSE_SPAIR_COR", "T1_SE_FS_COR_POST"];
    for name in others {
        files.extend(series_with(d, name, name, &slices, &[]));
    }
    files.extend(series_with(d, "no_fs", "PD_TSE_NO_FS_COR", &pd_slices, &[]));
    // Labelled PD, alone, with the pixels of a fat-suppressed series; and the other way round.
    let mislabelled = ["PD_TSE_SAG", "PD_TSE_FS_AX"];
    files.extend(series_with(d, "pd_sag", mislabelled[0], &slices, &[]));
    files.extend(series_with(d, "fs_ax", mislabelled[1], &pd_slices, &[]));
    node.send(&files).await;
    let arrived = node.deliver_to(&pacs, 12).await;
    assert_eq!(node.count(|s| &s.instances_passed_on), 10);
    assert_eq!(node.count(|s| &s.instances_guard_refused), 4);
    assert_eq!(node.count(|s| &s.instances_denoised), 2);
    assert_eq!(node.count(|s| &s.instances_set_aside), 0);
    assert_eq!(metric(&node, "instances_forwarded_total"), 12);
    assert_balanced(&node);
    let sent: Vec<String> = files.iter().map(|f| dicom_uid(f)).collect();
    for file in &arrived {
        let description = attribute(file, tags::SERIES_DESCRIPTION);
        if others.contains(&description.as_str()) || mislabelled.contains(&description.as_str()) {
            // Unchanged: the very instance that was sent, still ORIGINAL.
            assert!(sent.contains(&dicom_uid(file)), "{description}");
            assert!(attribute(file, tags::IMAGE_TYPE).starts_with("ORIGINAL"));
        } else {
            // "No fat suppression" is PD, denoised by the PD model as PD.
            assert_eq!(description, "PD_TSE_NO_FS_COR denoised");
            assert!(!sent.contains(&dicom_uid(file)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_patients_never_pair_and_a_series_of_two_contrasts_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pd_alone = support::test_model(d, "pd_single.onnx", &["--contrast", "pd"]);
    let (mut node, pacs) = guided_pair_node(d, |c| {
        c.pair_wait_s = 1.0;
        c.models.pd_alone = Some(pd_alone);
    })
    .await;
    let (pd_slices, slices) = phantom_pairs(2, 48, 40);
    let mut files = series_with(d, "pd", "PD_TSE_COR", &pd_slices, &["--patient=PAT-A"]);
    files.extend(series_with(
        d,
        "pdfs",
        "PD_TSE_FS_COR",
        &slices,
        &["--patient=PAT-B"],
    ));
    // One series UID, two contrasts: slices 0-1 PD, slices 2-3 PDFS.
    let uid = "--series=1.2.826.0.1.3680043.8.498.62";
    files.extend(series_with(d, "mixed_pd", "PD_TSE_SAG", &slices, &[uid]));
    files.extend(series_with(
        d,
        "mixed_fs",
        "PD_TSE_FS_SAG",
        &slices,
        &[uid, "--first-number=2"],
    ));
    node.send(&files).await;
    let arrived = node.deliver_to(&pacs, 2).await;
    assert_eq!(node.count(|s| &s.series_paired), 0, "patients A and B");
    assert_eq!(node.count(|s| &s.series_alone), 1);
    for file in &arrived {
        assert_eq!(attribute(file, tags::PATIENT_ID), "PAT-A");
        assert_eq!(
            attribute(file, tags::SERIES_DESCRIPTION),
            "PD_TSE_COR denoised"
        );
    }
    for _ in 0..50 {
        if node.count(|s| &s.instances_set_aside) >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(node.count(|s| &s.instances_set_aside), 6);
    assert_balanced(&node);
    let why = reasons(&d.join("spool"));
    assert_eq!(why.iter().filter(|r| r.contains("two labels")).count(), 4);
    assert_eq!(
        why.iter().filter(|r| r.contains("no pd partner")).count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_resembles_its_guide_is_not_delivered_as_denoised() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A PD model that answers with its guide: a swapped label looks like this.
    let pd_guided = support::test_model(
        d,
        "pd_copies_guide.onnx",
        &["--contrast", "pd", "--guided", "--copy-guide"],
    );
    let (_, pdfs_guided) = guided_models(d);
    let (mut node, pacs) = node_and_pacs(d, |c| {
        c.models.pd = Some(pd_guided);
        c.models.pdfs = Some(pdfs_guided);
        c.other_series = OtherSeries::PassOn;
    })
    .await;
    let pd_slices = phantom_slices(2, 48, 48);
    // A partner of other structure than its PD (turned): the guide is not the input rescaled.
    let pdfs_slices: Vec<_> = pd_slices
        .iter()
        .map(|s| s.t().as_standard_layout().to_owned())
        .collect();
    let mut files = series_with(d, "pd", "PD_TSE_COR", &pd_slices, &[]);
    files.extend(series_with(d, "pdfs", "PD_TSE_FS_COR", &pdfs_slices, &[]));
    node.send(&files).await;
    let arrived = node.deliver_to(&pacs, 4).await;
    assert!(node.count(|s| &s.instances_guard_refused) >= 2);
    assert_eq!(node.count(|s| &s.instances_denoised), 0);
    let sent: Vec<String> = files.iter().map(|f| dicom_uid(f)).collect();
    for file in &arrived {
        assert!(
            sent.contains(&dicom_uid(file)),
            "only the originals go on, never a result under the input's name"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sender_loses_nothing_and_its_series_pair_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Series stable after 0.3 s, slices 0.8 s apart in one association.
    let (mut node, pacs, _) = guided_node(d).await;
    let slices = phantom_slices(3, 48, 40);
    let mut files = series_with(d, "pd", "PD_TSE_COR", &slices, &[]);
    files.extend(series_with(d, "pdfs", "PD_TSE_FS_COR", &slices, &[]));
    send_slowly(node.addr.port(), &files, Duration::from_millis(800)).await;
    let arrived = node.deliver_to(&pacs, 6).await;
    assert_eq!(arrived.len(), 6);
    assert_eq!(node.count(|s| &s.series_paired), 2);
    assert_eq!(node.count(|s| &s.instances_unmatched), 0);
    assert_eq!(node.count(|s| &s.instances_set_aside), 0);
}

/// A tmpfs of `mib` MiB mounted at `dir` until dropped; none where mounting is not allowed
/// (the test then says so and checks nothing).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, mib: u32) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot mount a tmpfs here (needs root): the full-disk case is not checked");
        }
        ok.then(|| SmallDisk(dir.into()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(&self.0)
            .status();
    }
}

/// A whole node on a small spool (no margin kept free, retries within 1 s) with a PDFS
/// single-contrast model, delivering to a PACS at `port`.
async fn small_disk_node(dir: &Path, spool: &Path, port: u16) -> Running {
    let model = support::test_model(dir, "pdfs_single.onnx", &[]);
    Running::start_working(spool, |c| {
        c.destination = Some(Destination {
            ae_title: "PACS".into(),
            address: format!("127.0.0.1:{port}"),
        });
        c.series_stable_s = 0.3;
        c.min_free_mib = 0;
        c.retry_max_s = 1.0;
        c.models.pdfs_alone = Some(model);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_new_instances_and_loses_none_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spool = d.join("spool");
    let Some(_disk) = SmallDisk::mount(&spool, 3) else {
        return;
    };
    // The PACS is down while the study comes in.
    let port = free_port();
    let node = small_disk_node(d, &spool, port).await;
    // 24 slices of 256 x 256 (128 KiB each): more than 3 MiB can hold with their results.
    let files = series_with(
        d,
        "pdfs",
        "PD_TSE_FS_COR",
        &phantom_slices(24, 256, 256),
        &[],
    );
    let out = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(&files))
        .await;
    let stored = node.count(|s| &s.instances_stored);
    let refused = node.count(|s| &s.instances_refused);
    assert!(
        stored > 0 && refused > 0,
        "{}\n{}",
        node.stats().line(),
        said(&out)
    );
    // The PACS comes back: everything acknowledged reaches it, nothing is set aside.
    let pacs = Storescp::start(port, &d.join("pacs"));
    let arrived = node.delivered(&pacs, stored as usize).await;
    assert_eq!(arrived.len() as u64, stored, "{}", node.stats().line());
    assert_eq!(node.count(|s| &s.instances_set_aside), 0);
    assert!(reasons(&spool).is_empty());
    let staging = std::fs::read_dir(spool.join("outbox"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".staging")
        })
        .count();
    assert_eq!(staging, 0, "no staging left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_full_while_denoising_is_retried_not_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spool = d.join("spool");
    let Some(_disk) = SmallDisk::mount(&spool, 2) else {
        return;
    };
    let files = series_with(
        d,
        "pdfs",
        "PD_TSE_FS_COR",
        &phantom_slices(4, 128, 128),
        &[],
    );
    {
        let receiving = Running::start(&spool, |c| c.min_free_mib = 0).await;
        receiving.send(&files).await;
    }
    // The disk fills up (another program, a log) before the series is denoised.
    let ballast = spool.join("ballast");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", ballast.display()))
        .output();
    let port = free_port();
    let pacs = Storescp::start(port, &d.join("pacs"));
    let mut node = small_disk_node(d, &spool, port).await;
    for _ in 0..100 {
        if node.count(|s| &s.processing_retries) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        node.count(|s| &s.processing_retries) > 0,
        "{}",
        node.stats().line()
    );
    assert_eq!(node.count(|s| &s.instances_set_aside), 0);
    assert_eq!(spooled(&node).len(), 4, "the acknowledged instances stay");
    std::fs::remove_file(&ballast).unwrap();
    node.deliver_to(&pacs, 4).await;
    assert!(reasons(&spool).is_empty());
}

/// `file` written to `to` with its SOP Instance UID set to `uid` and, with `bump`, its
/// pixels changed.
fn rewrite(file: &Path, to: &Path, uid: &str, bump: bool) {
    let mut obj = dicom_object::open_file(file).unwrap();
    obj.put_str(tags::SOP_INSTANCE_UID, dicom_core::VR::UI, uid);
    obj.update_meta(|m| m.media_storage_sop_instance_uid = uid.to_string());
    if bump {
        let mut pixels = obj
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
            .to_vec();
        pixels[0] ^= 0x10;
        obj.put(dicom_core::DataElement::new(
            tags::PIXEL_DATA,
            dicom_core::VR::OW,
            dicom_core::value::PrimitiveValue::from(pixels),
        ));
    }
    obj.write_to_file(to).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uids_are_refused_and_a_changed_instance_under_one_uid_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = series_with(d, "pdfs", "PD_TSE_FS_COR", &phantom_slices(1, 32, 32), &[]);
    let dots = d.join("dots.dcm");
    rewrite(&files[0], &dots, "..", false);
    let changed = d.join("changed.dcm");
    rewrite(&files[0], &changed, &dicom_uid(&files[0]), true);
    for (policy, conflict_ok) in [(OnConflict::KeepFirst, true), (OnConflict::Refuse, false)] {
        let spool = d.join(format!("spool-{policy:?}"));
        let node = Running::start(&spool, |c| c.on_conflict = policy).await;
        let send = |f: &PathBuf| paths(std::slice::from_ref(f));
        let out = node
            .dcmtk("storescu", "S", "CROSSDENOISE", &send(&dots))
            .await;
        assert!(
            said(&out).contains("0xc000") || !out.status.success(),
            "{}",
            said(&out)
        );
        let out = node
            .dcmtk("storescu", "S", "CROSSDENOISE", &send(&files[0]))
            .await;
        assert!(out.status.success(), "{}", said(&out));
        let out = node
            .dcmtk("storescu", "S", "CROSSDENOISE", &send(&changed))
            .await;
        assert_eq!(
            out.status.success(),
            conflict_ok,
            "{policy:?}: {}",
            said(&out)
        );
        assert_eq!(node.count(|s| &s.instances_stored), 1);
        assert_eq!(node.count(|s| &s.instances_conflicting), 1);
        assert_eq!(
            node.count(|s| &s.instances_refused),
            if conflict_ok { 1 } else { 2 }
        );
        assert_eq!(
            node.count(|s| &s.instances_duplicate),
            u64::from(conflict_ok)
        );
        let m = |name| metric(&node, name);
        assert_eq!(
            m("instances_received_total"),
            m("instances_stored_total")
                + m("instances_duplicate_total")
                + m("instances_refused_total")
        );
        // The first instance is what the spool keeps, and nothing named by "..".
        let kept = spooled(&node);
        assert_eq!(kept.len(), 1);
        let first = dicom_object::open_file(&kept[0]).unwrap();
        let sent = dicom_object::open_file(&files[0]).unwrap();
        assert_eq!(
            first.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap(),
            sent.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_file_from_the_future_is_processed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spool = d.join("spool");
    let files = series_with(d, "pdfs", "PD_TSE_FS_COR", &phantom_slices(2, 32, 32), &[]);
    {
        let receiving = Running::start(&spool, |_| {}).await;
        receiving.send(&files).await;
    }
    // A clock set back after the instances came in.
    let future = std::time::SystemTime::now() + Duration::from_secs(3600);
    for entry in std::fs::read_dir(spool.join("received")).unwrap() {
        let f = std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        f.set_modified(future).unwrap();
    }
    let model = support::test_model(d, "pdfs_single.onnx", &[]);
    let (mut node, pacs) = node_and_pacs(d, |c| c.models.pdfs_alone = Some(model)).await;
    node.deliver_to(&pacs, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_from_one_peer_cannot_lock_the_scanner_out() {
    let dir = tempfile::tempdir().unwrap();
    let node = Running::start(&dir.path().join("spool"), |c| {
        c.max_associations = 8;
        c.max_associations_per_peer = 4;
        c.handshake_timeout_s = 1.0;
        c.timeout_s = 60.0;
    })
    .await;
    // Eight connections from another loopback address that never ask for an association.
    let mut silent = Vec::new();
    for _ in 0..8 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        silent.push(socket.connect(node.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The scanner (another address) is answered at once: that peer holds 4 slots, not 8.
    let echo = node.dcmtk("echoscu", "SCANNER", "CROSSDENOISE", &[]).await;
    assert!(echo.status.success(), "{}", said(&echo));
    assert_eq!(node.count(|s| &s.associations_rejected), 4);
    // Its held connections are closed after handshake_timeout_s, well before timeout_s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(node.count(|s| &s.associations_rejected), 8);
    let mut closed = 0;
    for s in &mut silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::io::AsyncReadExt::read(s, &mut byte),
        )
        .await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            closed += 1;
        }
    }
    assert_eq!(closed, 4, "the 4 held connections are closed");
}

/// The items of a sequence attribute of `file`.
fn items(file: &Path, tag: dicom_core::Tag) -> Vec<dicom_object::InMemDicomObject> {
    let obj = dicom_object::open_file(file).unwrap();
    obj.element(tag).unwrap().items().unwrap().to_vec()
}

/// dciodvfy's error lines for `file` (its warnings left out), its file name removed.
fn iod_errors(file: &Path) -> Vec<String> {
    let out = std::process::Command::new("dciodvfy")
        .arg(file)
        .output()
        .expect("dicom3tools installed (scripts/install-dcmtk.sh)");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("Error"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_instances_name_their_source_guide_software_and_a_series_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut node, pacs) = guided_pair_node(d, |c| {
        c.forward_originals = true;
        c.series_number_offset = 500;
        c.strength.pd = 0.5;
    })
    .await;
    let slices = phantom_slices(2, 48, 40);
    let pd = series_with(d, "pd", "PD_TSE_COR", &slices, &[]);
    let pdfs = series_with(d, "pdfs", "PD_TSE_FS_COR", &slices, &[]);
    let mut files = pd.clone();
    files.extend(pdfs.iter().cloned());
    node.send(&files).await;
    // The derived series and, with forward_originals, the originals after them.
    let arrived = node.deliver_to(&pacs, 8).await;
    let sent: Vec<String> = files.iter().map(|f| dicom_uid(f)).collect();
    let (originals, derived): (Vec<_>, Vec<_>) =
        arrived.iter().partition(|f| sent.contains(&dicom_uid(f)));
    assert_eq!((originals.len(), derived.len()), (4, 4));
    for file in derived {
        let position = attribute(file, tags::IMAGE_POSITION_PATIENT);
        let description = attribute(file, tags::SERIES_DESCRIPTION);
        let (own, partner) = if description.starts_with("PD_TSE_COR") {
            (&pd, &pdfs)
        } else {
            (&pdfs, &pd)
        };
        let at = |series: &[PathBuf]| {
            series
                .iter()
                .find(|f| attribute(f, tags::IMAGE_POSITION_PATIENT) == position)
                .map(|f| dicom_uid(f))
                .unwrap()
        };
        let sources = items(file, tags::SOURCE_IMAGE_SEQUENCE);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            text(&sources[0], tags::REFERENCED_SOP_INSTANCE_UID),
            at(own)
        );
        assert_eq!(
            text(&sources[1], tags::REFERENCED_SOP_INSTANCE_UID),
            at(partner)
        );
        let purpose = |item: &dicom_object::InMemDicomObject| {
            let codes = item
                .element(tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE)
                .unwrap()
                .items()
                .unwrap()
                .to_vec();
            text(&codes[0], tags::CODE_VALUE)
        };
        assert_eq!(
            (purpose(&sources[0]), purpose(&sources[1])),
            ("121322".into(), "121338".into())
        );
        let derivation = items(file, tags::DERIVATION_CODE_SEQUENCE);
        assert_eq!(text(&derivation[0], tags::CODE_VALUE), "113087");
        let equipment = items(file, tags::CONTRIBUTING_EQUIPMENT_SEQUENCE);
        let software = text(equipment.last().unwrap(), tags::SOFTWARE_VERSIONS);
        assert!(software.contains("crossdenoise"), "{software}");
        assert_eq!(attribute(file, tags::SERIES_NUMBER), "503");
        // Nothing the standard's IOD checker finds wrong that the source did not have.
        let before = iod_errors(&own[0]);
        let new: Vec<String> = iod_errors(file)
            .into_iter()
            .filter(|e| !before.contains(e))
            .collect();
        assert!(new.is_empty(), "{description}: {new:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_whose_pixels_disagree_with_its_labels_is_not_denoised() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut node, pacs) = guided_pair_node(d, |c| c.other_series = OtherSeries::PassOn).await;
    let (pd, pdfs) = support::phantom_pairs(2, 64, 64);
    // Labelled right, in one frame of reference; swapped (PD pixels named fat-suppressed),
    // in another.
    let right = "--frame=1.2.826.0.1.3680043.8.498.70";
    let swapped = "--frame=1.2.826.0.1.3680043.8.498.71";
    let mut files = series_with(d, "pd", "PD_TSE_COR", &pd, &[right]);
    files.extend(series_with(d, "pdfs", "PD_TSE_FS_COR", &pdfs, &[right]));
    let wrong_pd = series_with(d, "wrong_pd", "PD_TSE_COR", &pdfs, &[swapped]);
    let wrong_pdfs = series_with(d, "wrong_pdfs", "PD_TSE_FS_COR", &pd, &[swapped]);
    files.extend(wrong_pd.iter().chain(&wrong_pdfs).cloned());
    node.send(&files).await;
    let arrived = node.deliver_to(&pacs, 8).await;
    assert_eq!(node.count(|s| &s.series_paired), 2, "the right pair");
    assert_eq!(node.count(|s| &s.instances_denoised), 4);
    assert_eq!(node.count(|s| &s.instances_guard_refused), 4);
    // The swapped pair goes on as it came: the very instances sent, never as denoised.
    let swapped_uids: Vec<String> = wrong_pd
        .iter()
        .chain(&wrong_pdfs)
        .map(|f| dicom_uid(f))
        .collect();
    let unchanged = arrived
        .iter()
        .filter(|f| swapped_uids.contains(&dicom_uid(f)))
        .count();
    assert_eq!(unchanged, 4);
}

/// Waits (10 s at most) until the node has denoised `n` instances.
async fn denoised(node: &Running, n: u64) {
    for _ in 0..100 {
        if node.count(|s| &s.instances_denoised) >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_that_come_while_their_series_waits_for_the_pacs_are_not_held_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let node = small_disk_node(d, &d.join("spool"), port).await;
    let slices = phantom_slices(3, 48, 40);
    let uid = "--series=1.2.826.0.1.3680043.8.498.80";
    let first = series_with(d, "first", "PD_TSE_FS_COR", &slices[..2], &[uid]);
    let later = series_with(
        d,
        "later",
        "PD_TSE_FS_COR",
        &slices[2..],
        &[uid, "--first-number=2"],
    );
    node.send(&first).await;
    denoised(&node, 2).await;
    // The PACS is down: the first two wait in the outbox while the third comes.
    node.send(&later).await;
    denoised(&node, 3).await;
    assert_eq!(
        node.count(|s| &s.instances_denoised),
        3,
        "{}",
        node.stats().line()
    );
    assert_eq!(node.count(|s| &s.instances_late), 1);
    let pacs = Storescp::start(port, &d.join("pacs"));
    let arrived = node.delivered(&pacs, 3).await;
    assert_eq!(arrived.len(), 3);
    let series: std::collections::HashSet<String> = arrived
        .iter()
        .map(|f| attribute(f, tags::SERIES_INSTANCE_UID))
        .collect();
    assert_eq!(series.len(), 1, "one derived series");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_senders_of_one_study_at_once_store_each_instance_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let node = Running::start(&d.join("spool"), |_| {}).await;
    let files = series_with(d, "pdfs", "PD_TSE_FS_COR", &phantom_slices(6, 64, 64), &[]);
    tokio::join!(node.send(&files), node.send(&files), node.send(&files));
    assert_eq!(node.count(|s| &s.instances_received), 18);
    assert_eq!(
        node.count(|s| &s.instances_stored),
        6,
        "{}",
        node.stats().line()
    );
    assert_eq!(node.count(|s| &s.instances_duplicate), 12);
    assert_eq!(spooled(&node).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_series_passed_on_arrives_as_it_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mut node, pacs) = node_and_pacs(d, |c| c.other_series = OtherSeries::PassOn).await;
    let plain = series_with(d, "t2", "T2_TSE_FS_COR", &phantom_slices(2, 48, 40), &[]);
    let compressed = support::compress(&plain, "jpeg-lossless", &d.join("t2.jpeg"));
    let mut args = vec!["-xs".to_string()];
    args.extend(paths(&compressed));
    let out = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &args)
        .await;
    assert!(out.status.success(), "{}", said(&out));
    let arrived = node.deliver_to(&pacs, 2).await;
    assert_eq!(node.count(|s| &s.instances_passed_on), 2);
    for file in &compressed {
        let uid = dicom_uid(file);
        let copy = arrived.iter().find(|f| dicom_uid(f) == uid).unwrap();
        let (a, b) = (
            dicom_object::open_file(file).unwrap(),
            dicom_object::open_file(copy).unwrap(),
        );
        assert_eq!(
            b.meta().transfer_syntax().trim_end_matches('\0'),
            a.meta().transfer_syntax().trim_end_matches('\0'),
            "still compressed as sent"
        );
        let fragments = |o: &dicom_object::DefaultDicomObject| {
            o.element(tags::PIXEL_DATA)
                .unwrap()
                .fragments()
                .unwrap()
                .to_vec()
        };
        assert_eq!(fragments(&b), fragments(&a), "the same compressed pixels");
    }
}
