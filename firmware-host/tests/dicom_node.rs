//! The DICOM node against real DICOM peers: DCMTK's `echoscu` and `storescu` (installed by
//! scripts/install-dcmtk.sh, which the test command runs) as the modality, series written by
//! pydicom from phantom slices. What a C-STORE acknowledged is in the spool, readable, equal
//! to what was sent, and stored once however often it comes.

mod node;
use crossdenoise_test_support as support;

use std::path::{Path, PathBuf};

use crossdenoise_host::dicom::models::Models;
use crossdenoise_host::mrd::config::Destination;
use crossdenoise_image::dicom::DicomSlice;
use crossdenoise_runtime::DenoiserOptions;
use node::*;
use support::{Storescp, compress, dicom_series, free_port, phantom_slices, reference};

/// `n` phantom slices as the frames of one multi-frame instance (`reference.py
/// dicom-enhanced`, SOP class `enhanced` or `sc`) in `dir/multi_frame.dcm`.
fn multi_frame(dir: &Path, n: usize, sop_class: &str, description: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join("multi_frame.dcm");
    let mut args = vec![
        "dicom-enhanced".to_string(),
        out.display().to_string(),
        format!("--sop-class={sop_class}"),
        format!("--description={description}"),
    ];
    for (i, s) in phantom_slices(n, 48, 40).iter().enumerate() {
        let p = dir.join(format!("frame_{i}.npy"));
        crossdenoise_image::io::write_npy(&p, s.view()).unwrap();
        args.push(p.display().to_string());
    }
    reference(&args);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_from_storescu_is_spooled_equal_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = Running::start(&dir.path().join("spool"), |_| {}).await;
    let echo = node.dcmtk("echoscu", "SCANNER", "CROSSDENOISE", &[]).await;
    assert!(echo.status.success(), "{}", said(&echo));
    assert_eq!(node.count(|s| &s.echoes), 1);

    let sent = series(&dir.path().join("series"), 5, (48, 40));
    let out = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(&sent))
        .await;
    assert!(out.status.success(), "{}", said(&out));
    let stored = spooled(&node);
    assert_eq!(stored.len(), 5, "{stored:?}");
    for file in &sent {
        let original = DicomSlice::read(file).unwrap();
        let uid = dicom_uid(file);
        let copy = node.node.spool.received().join(format!("{uid}.dcm"));
        let spooled = DicomSlice::read(&copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display()));
        assert_eq!(
            spooled.image, original.image,
            "{uid}: pixels in real-world units"
        );
    }

    // The same series again (a resend after lost responses): acknowledged, stored once.
    let again = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(&sent))
        .await;
    assert!(again.status.success(), "{}", said(&again));
    assert_eq!(spooled(&node).len(), 5);
    assert_eq!(node.count(|s| &s.instances_received), 10);
    assert_eq!(node.count(|s| &s.instances_stored), 5);
    assert_eq!(node.count(|s| &s.instances_duplicate), 5);
    assert_eq!(node.count(|s| &s.associations), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_callers_calling_this_node_are_let_in() {
    let dir = tempfile::tempdir().unwrap();
    let node = Running::start(&dir.path().join("spool"), |c| {
        c.allowed_calling_aes = vec!["SCANNER".into(), "PACS".into()];
    })
    .await;
    let intruder = node.dcmtk("echoscu", "INTRUDER", "CROSSDENOISE", &[]).await;
    assert!(!intruder.status.success(), "{}", said(&intruder));
    let text = said(&intruder);
    assert!(text.contains("Calling AE Title Not Recognized"), "{text}");
    let elsewhere = node.dcmtk("echoscu", "SCANNER", "OTHERNODE", &[]).await;
    assert!(!elsewhere.status.success(), "{}", said(&elsewhere));
    assert!(
        said(&elsewhere).contains("Called AE Title Not Recognized"),
        "{}",
        said(&elsewhere)
    );
    let scanner = node.dcmtk("echoscu", "SCANNER", "CROSSDENOISE", &[]).await;
    assert!(scanner.status.success(), "{}", said(&scanner));
    assert_eq!(node.count(|s| &s.associations_rejected), 2);
    assert_eq!(node.count(|s| &s.associations), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_taken_is_refused_and_the_rest_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let node = Running::start(&dir.path().join("spool"), |c| c.max_instance_mib = 1).await;
    let small = series(&dir.path().join("small"), 3, (32, 32));
    // 2 MB of pixels: over max_instance_mib.
    let large = series(&dir.path().join("large"), 1, (1024, 1024));
    // JPEG-LS: a syntax this build has no decoder for.
    let compressed = dir.path().join("jpeg-ls.dcm");
    reference(&[
        "dicom-compressed".to_string(),
        compressed.display().to_string(),
    ]);

    // A multi-frame secondary capture: a SOP class the node does not take.
    let capture = multi_frame(&dir.path().join("sc"), 2, "sc", "PD_TSE_FS_COR");

    // storescu goes on after a failed instance with --no-halt.
    // -xt: storescu proposes JPEG-LS (and the uncompressed syntaxes) for MR images.
    let mut files = vec![
        "--no-halt".into(),
        "-xt".into(),
        compressed.clone(),
        capture.clone(),
        large[0].clone(),
    ];
    files.extend(small.iter().cloned());
    let out = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(&files))
        .await;
    let text = said(&out);
    assert!(
        text.contains("Store Failed, file: ") && text.contains("jpeg-ls.dcm"),
        "{text}"
    );
    // The node refused the JPEG-LS presentation context: storescu had only an
    // uncompressed one left, which it could not convert the stub to.
    assert!(
        text.contains("unable to convert dataset from 'JPEG-LS"),
        "{text}"
    );
    // The secondary capture was refused at negotiation: the sender is told there is no
    // presentation context for its SOP class.
    assert!(
        text.contains("No presentation context for:")
            && text.contains("1.2.840.10008.5.1.4.1.1.7.3"),
        "{text}"
    );
    let stored = spooled(&node);
    assert_eq!(stored.len(), 3, "only the small series: {stored:?}\n{text}");
    assert_eq!(
        node.count(|s| &s.instances_refused),
        1,
        "the large one, answered out of resources"
    );
    assert!(
        !stored
            .iter()
            .any(|p| p.ends_with(format!("{}.dcm", dicom_uid(&large[0]))))
    );

    // Nothing else was affected: the node still answers.
    let echo = node.dcmtk("echoscu", "SCANNER", "CROSSDENOISE", &[]).await;
    assert!(echo.status.success(), "{}", said(&echo));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_associations_a_caller_is_told_to_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let node = Running::start(&dir.path().join("spool"), |c| {
        c.max_associations = 1;
        c.timeout_s = 30.0;
    })
    .await;
    // A connection that never asks for an association holds the one slot.
    let holder = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let busy = node.dcmtk("echoscu", "SCANNER", "CROSSDENOISE", &[]).await;
    assert!(!busy.status.success(), "{}", said(&busy));
    assert!(
        said(&busy).contains("Local Limit Exceeded"),
        "{}",
        said(&busy)
    );
    drop(holder);
    // The slot is free once the node sees the connection gone.
    let mut answered = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if node
            .dcmtk("echoscu", "SCANNER", "CROSSDENOISE", &[])
            .await
            .status
            .success()
        {
            answered = true;
            break;
        }
    }
    assert!(answered, "{}", node.stats().line());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_waits_for_a_pacs_that_is_down_then_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let spool = dir.path().join("spool");
    let node = Running::start(&spool, |c| {
        c.destination = Some(Destination {
            ae_title: "PACS".into(),
            address: format!("127.0.0.1:{port}"),
        });
        c.retry_max_s = 1.0;
    })
    .await;
    // Three derived instances waiting, each with the received instance it was made from.
    let sent = series(&dir.path().join("series"), 3, (40, 32));
    let outbox = spool.join("outbox/derived-series");
    std::fs::create_dir_all(&outbox).unwrap();
    for file in &sent {
        let name = format!("{}.dcm", dicom_uid(file));
        std::fs::copy(file, outbox.join(&name)).unwrap();
        std::fs::copy(file, node.node.spool.received().join(&name)).unwrap();
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let destination = node.node.config.destination.clone().unwrap();
    let deliver = tokio::spawn(crossdenoise_host::dicom::outbox::deliver(
        node.node.clone(),
        destination,
        stop_rx,
    ));

    // The PACS is down: the outbox keeps everything and the node tries again.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        node.count(|s| &s.forward_retries) >= 1,
        "{}",
        node.stats().line()
    );
    assert_eq!(crossdenoise_host::dicom::outbox::pending(&spool).len(), 3);
    assert_eq!(spooled(&node).len(), 3);

    let pacs = Storescp::start(port, &dir.path().join("pacs"));
    let mut delivered = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if crossdenoise_host::dicom::outbox::pending(&spool).is_empty() {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "{}", node.stats().line());
    let _ = stop_tx.send(true);
    deliver.await.unwrap();
    assert_eq!(node.count(|s| &s.instances_forwarded), 3);
    assert!(
        spooled(&node).is_empty(),
        "acknowledged instances leave the spool"
    );
    let arrived = pacs.received();
    assert_eq!(arrived.len(), 3, "{arrived:?}");
    for file in &sent {
        let uid = dicom_uid(file);
        let copy = arrived
            .iter()
            .find(|p| dicom_uid(p) == uid)
            .unwrap_or_else(|| panic!("{uid} did not arrive"));
        assert_eq!(
            DicomSlice::read(copy).unwrap().image,
            DicomSlice::read(file).unwrap().image
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_the_destination_refuses_is_set_aside_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    // The destination: another node, taking nothing over 1 MiB.
    let pacs = Running::start(&dir.path().join("pacs"), |c| {
        c.ae_title = "PACS".into();
        c.max_instance_mib = 1;
    })
    .await;
    let spool = dir.path().join("spool");
    let node = Running::start(&spool, |c| {
        c.destination = Some(Destination {
            ae_title: "PACS".into(),
            address: pacs.addr.to_string(),
        });
    })
    .await;
    let small = series(&dir.path().join("small"), 2, (32, 32));
    let large = series(&dir.path().join("large"), 1, (1024, 1024));
    let outbox = spool.join("outbox/s");
    std::fs::create_dir_all(&outbox).unwrap();
    for file in small.iter().chain(&large) {
        std::fs::copy(file, outbox.join(format!("{}.dcm", dicom_uid(file)))).unwrap();
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let deliver = tokio::spawn(crossdenoise_host::dicom::outbox::deliver(
        node.node.clone(),
        node.node.config.destination.clone().unwrap(),
        stop_rx,
    ));
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if crossdenoise_host::dicom::outbox::pending(&spool).is_empty() {
            break;
        }
    }
    let _ = stop_tx.send(true);
    deliver.await.unwrap();
    assert!(crossdenoise_host::dicom::outbox::pending(&spool).is_empty());
    assert_eq!(node.count(|s| &s.instances_forwarded), 2);
    assert_eq!(node.count(|s| &s.forward_failed), 1);
    let aside = spool
        .join("failed")
        .join(format!("{}.dcm", dicom_uid(&large[0])));
    assert!(aside.is_file());
    let reason = std::fs::read_to_string(aside.with_extension("reason.txt")).unwrap();
    assert!(reason.contains("0xa700"), "{reason}");
    assert_eq!(spooled(&pacs).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_without_a_partner_is_denoised_alone_and_reaches_the_pacs_as_its_own_contrast() {
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let (mut node, pacs, model) = pdfs_node_and_pacs(dir.path()).await;
    let runtime = support::runtime();
    let options = DenoiserOptions::default();

    // The models are checked against what their key promises: a PDFS model is no PD model.
    let mut wrong = node.node.config.clone();
    wrong.models.pd_alone = Some(model.clone());
    let e = Models::open(&wrong, &runtime, &options)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("dicom.models.pd_alone") && e.contains("not a pd single model"),
        "{e}"
    );

    let pdfs = described_series(&dir.path().join("pdfs"), 4, (48, 48), "PD_TSE_FS_COR");
    let t1 = described_series(&dir.path().join("t1"), 2, (48, 48), "T1_TSE_SAG");
    let mut files = pdfs.clone();
    files.extend(t1.iter().cloned());
    let out = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(&files))
        .await;
    assert!(out.status.success(), "{}", said(&out));

    let arrived = node.deliver_to(&pacs, 4).await;
    assert!(
        spooled(&node).is_empty(),
        "delivered instances leave the spool"
    );
    assert_eq!(node.count(|s| &s.series_alone), 1);
    assert_eq!(node.count(|s| &s.instances_denoised), 4);
    assert_eq!(node.count(|s| &s.instances_forwarded), 4);
    // The T1 series is no contrast of this protocol: set aside with the reason.
    assert_eq!(node.count(|s| &s.instances_set_aside), 2);
    let reasons: Vec<String> = std::fs::read_dir(spool.join("failed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".reason.txt"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons[0].contains("not a PD or PDFS series") && reasons[0].contains("T1"),
        "{reasons:?}"
    );

    let source_series = attribute(&pdfs[0], tags::SERIES_INSTANCE_UID);
    let mut derived_series = std::collections::HashSet::new();
    for file in &pdfs {
        let uid = dicom_uid(file);
        let position = attribute(file, tags::IMAGE_POSITION_PATIENT);
        let copy = arrived
            .iter()
            .find(|p| attribute(p, tags::IMAGE_POSITION_PATIENT) == position)
            .unwrap_or_else(|| panic!("no result at {position}"));
        assert_ne!(dicom_uid(copy), uid, "a derived instance has its own UID");
        let series = attribute(copy, tags::SERIES_INSTANCE_UID);
        assert_ne!(series, source_series);
        derived_series.insert(series);
        // Its own contrast, labelled as denoised: never the other contrast under its name.
        assert_eq!(
            attribute(copy, tags::SERIES_DESCRIPTION),
            "PD_TSE_FS_COR denoised"
        );
        assert!(attribute(copy, tags::IMAGE_TYPE).starts_with("DERIVED"));
        let (input, output) = (
            DicomSlice::read(file).unwrap(),
            DicomSlice::read(copy).unwrap(),
        );
        let mut d = crossdenoise_runtime::Denoiser::open(&runtime, &model, &options).unwrap();
        let expected = d.denoise(input.image.view()).unwrap();
        let quantum = output.rescale_slope as f32;
        let worst = expected
            .iter()
            .zip(output.image.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= quantum, "{worst} > one stored step ({quantum})");
    }
    assert_eq!(derived_series.len(), 1, "one derived series");
}

/// What a modality or an archive sends compressed — JPEG Lossless (DCMTK's `dcmcjpeg`), RLE
/// Lossless and JPEG 2000 (pydicom) — is taken, decoded, denoised and delivered
/// uncompressed: the runtime's output on the decoded slice, within one stored step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_series_are_decoded_denoised_and_delivered_uncompressed() {
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let (mut node, pacs, model) = pdfs_node_and_pacs(dir.path()).await;
    let mut sent = Vec::new();
    // storescu proposes the file's syntax with these flags (without, only uncompressed).
    for (syntax, propose) in [("jpeg-lossless", "-xs"), ("rle", "-xr"), ("j2k", "-xv")] {
        let description = format!("PD_FS_{syntax}");
        let plain = described_series(&dir.path().join(syntax), 2, (48, 40), &description);
        let compressed = compress(&plain, syntax, &dir.path().join(format!("{syntax}.c")));
        let mut args = vec![propose.to_string()];
        args.extend(paths(&compressed));
        let out = node
            .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &args)
            .await;
        assert!(out.status.success(), "{syntax}: {}", said(&out));
        sent.extend(compressed.into_iter().map(|f| (f, description.clone())));
    }
    assert_eq!(node.count(|s| &s.instances_stored), 6);
    // Spooled as received: compressed.
    for f in spooled(&node) {
        let meta = dicom_object::open_file(&f).unwrap();
        let syntax = meta.meta().transfer_syntax().trim_end_matches('\0');
        assert!(
            !["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"].contains(&syntax),
            "{syntax}"
        );
    }

    let arrived = node.deliver_to(&pacs, 6).await;
    assert_eq!(node.count(|s| &s.series_alone), 3);
    let runtime = support::runtime();
    let mut denoiser =
        crossdenoise_runtime::Denoiser::open(&runtime, &model, &DenoiserOptions::default())
            .unwrap();
    for (file, description) in &sent {
        let position = attribute(file, tags::IMAGE_POSITION_PATIENT);
        let copy = arrived
            .iter()
            .find(|p| {
                attribute(p, tags::IMAGE_POSITION_PATIENT) == position
                    && attribute(p, tags::SERIES_DESCRIPTION) == format!("{description} denoised")
            })
            .unwrap_or_else(|| panic!("no result for {description} at {position}"));
        let syntax = dicom_object::open_file(copy)
            .unwrap()
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        assert!(
            ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"].contains(&syntax.as_str()),
            "{description}: delivered in {syntax}"
        );
        let (input, output) = (
            DicomSlice::read(file).unwrap(),
            DicomSlice::read(copy).unwrap(),
        );
        let expected = denoiser.denoise(input.image.view()).unwrap();
        let quantum = output.rescale_slope as f32;
        let worst = support::max_abs_diff(&expected, &output.image);
        assert!(worst <= quantum, "{description}: {worst} > one stored step");
    }
}

/// With the guided models configured, a series whose partner contrast never comes waits
/// `pair_wait_s` (counted as waiting, nothing sent), then is denoised by its contrast's
/// single-contrast model and delivered as its own contrast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_whose_partner_never_comes_is_denoised_alone_after_pair_wait_s() {
    let dir = tempfile::tempdir().unwrap();
    let (pd, pdfs) = guided_models(dir.path());
    let pdfs_alone = support::test_model(dir.path(), "pdfs_single.onnx", &[]);
    let (mut node, pacs) = node_and_pacs(dir.path(), |c| {
        c.pair_wait_s = 2.0;
        c.models.pd = Some(pd);
        c.models.pdfs = Some(pdfs);
        c.models.pdfs_alone = Some(pdfs_alone.clone());
    })
    .await;
    let sent = described_series(&dir.path().join("pdfs"), 3, (48, 40), "PD_TSE_FS_SAG");
    let out = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(&sent))
        .await;
    assert!(out.status.success(), "{}", said(&out));
    // Complete, and waiting for its partner: counted, nothing denoised or sent.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        node.count(|s| &s.series_waiting),
        1,
        "{}",
        node.stats().line()
    );
    assert_eq!(node.count(|s| &s.instances_denoised), 0);
    assert!(pacs.received().is_empty());

    let arrived = node.deliver_to(&pacs, 3).await;
    assert_eq!(node.count(|s| &s.series_alone), 1);
    assert_eq!(node.count(|s| &s.series_paired), 0);
    assert_eq!(node.count(|s| &s.series_waiting), 0);
    let mut denoiser = crossdenoise_runtime::Denoiser::open(
        &support::runtime(),
        &pdfs_alone,
        &DenoiserOptions::default(),
    )
    .unwrap();
    use dicom_dictionary_std::tags;
    for file in &sent {
        let position = attribute(file, tags::IMAGE_POSITION_PATIENT);
        let copy = arrived
            .iter()
            .find(|p| attribute(p, tags::IMAGE_POSITION_PATIENT) == position)
            .unwrap_or_else(|| panic!("no result at {position}"));
        assert_eq!(
            attribute(copy, tags::SERIES_DESCRIPTION),
            "PD_TSE_FS_SAG denoised"
        );
        let (input, output) = (
            DicomSlice::read(file).unwrap(),
            DicomSlice::read(copy).unwrap(),
        );
        let expected = denoiser.denoise(input.image.view()).unwrap();
        let worst = support::max_abs_diff(&expected, &output.image);
        assert!(worst <= output.rescale_slope as f32, "{worst}");
    }
}

/// A PD + PDFS pair where the PDFS series covers one slice fewer: every covered slice is
/// denoised with its partner as guide, the uncovered PD slice by `pd_alone`, all in one
/// derived series per contrast — the study is not failed for one slice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_its_partner_series_does_not_cover_is_denoised_alone_in_the_pair() {
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let (mut node, pacs, [pd_guided, pdfs_guided, pd_alone]) = guided_node(dir.path()).await;
    let (pd, pdfs) = pd_pdfs_pair(dir.path(), 4, 3);
    let mut files = pd.clone();
    files.extend(pdfs.iter().cloned());
    let out = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(&files))
        .await;
    assert!(out.status.success(), "{}", said(&out));
    let arrived = node.deliver_to(&pacs, 7).await;
    assert_eq!(node.count(|s| &s.series_paired), 2);
    assert_eq!(node.count(|s| &s.instances_unmatched), 1);
    assert_eq!(node.count(|s| &s.instances_set_aside), 0);

    let runtime = support::runtime();
    let open = |path: &PathBuf| {
        crossdenoise_runtime::Denoiser::open(&runtime, path, &DenoiserOptions::default()).unwrap()
    };
    let (mut pd_model, mut pdfs_model, mut alone_model) =
        (open(&pd_guided), open(&pdfs_guided), open(&pd_alone));
    let read = |f: &PathBuf| DicomSlice::read(f).unwrap();
    for (inputs, partners, description) in
        [(&pd, &pdfs, "PD_TSE_COR"), (&pdfs, &pd, "PD_TSE_FS_COR")]
    {
        let mut series = std::collections::HashSet::new();
        for (i, file) in inputs.iter().enumerate() {
            let copy = delivered_copy(&arrived, file, description);
            series.insert(attribute(copy, tags::SERIES_INSTANCE_UID));
            let input = read(file).image;
            let expected = match partners.get(i) {
                Some(partner) => {
                    let guide = read(partner).image;
                    let model = if description == "PD_TSE_COR" {
                        &mut pd_model
                    } else {
                        &mut pdfs_model
                    };
                    model
                        .denoise_guided_batch(&[input.view()], &[guide.view()])
                        .unwrap()
                        .remove(0)
                }
                None => alone_model.denoise(input.view()).unwrap(),
            };
            let output = read(copy);
            let worst = support::max_abs_diff(&expected, &output.image);
            assert!(
                worst <= output.rescale_slope as f32,
                "{description} slice {i}: {worst}"
            );
        }
        assert_eq!(series.len(), 1, "{description}: one derived series");
    }
}

/// An Enhanced MR instance (one object, three frames, functional groups) is split per frame
/// and each frame denoised and delivered as a slice of an MR Image Storage series: at the
/// frame's place, with its spacing and rescale, equal to the runtime's output on the same
/// slice written as a classic series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enhanced_mr_instance_is_split_per_frame_and_each_frame_denoised() {
    use crossdenoise_image::noise_map::PhaseEncoding;
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let (mut node, pacs, model) = pdfs_node_and_pacs(dir.path()).await;
    let enhanced = multi_frame(&dir.path().join("enhanced"), 3, "enhanced", "PD_TSE_FS_COR");
    let out = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(&[enhanced]))
        .await;
    assert!(out.status.success(), "{}", said(&out));
    let arrived = node.deliver_to(&pacs, 3).await;
    assert_eq!(node.count(|s| &s.instances_split), 1);
    assert_eq!(node.count(|s| &s.series_alone), 1);
    assert_eq!(node.count(|s| &s.instances_set_aside), 0);

    // The same slices as a classic series, stored as the frames are (12-bit, rescale 0.5):
    // what each frame must come back as.
    let classic = dicom_series(
        &dir.path().join("classic"),
        "u12",
        &phantom_slices(3, 48, 40),
        &[],
    );
    let mut denoiser = crossdenoise_runtime::Denoiser::open(
        &support::runtime(),
        &model,
        &DenoiserOptions::default(),
    )
    .unwrap();
    for file in &classic {
        let position = attribute(file, tags::IMAGE_POSITION_PATIENT);
        let copy = arrived
            .iter()
            .find(|p| attribute(p, tags::IMAGE_POSITION_PATIENT) == position)
            .unwrap_or_else(|| panic!("no frame back at {position}"));
        assert_eq!(
            attribute(copy, tags::SOP_CLASS_UID),
            "1.2.840.10008.5.1.4.1.1.4"
        );
        assert_eq!(
            attribute(copy, tags::SERIES_DESCRIPTION),
            "PD_TSE_FS_COR denoised"
        );
        for tag in [
            tags::PIXEL_SPACING,
            tags::SLICE_THICKNESS,
            tags::IMAGE_ORIENTATION_PATIENT,
        ] {
            assert_eq!(attribute(copy, tag), attribute(file, tag));
        }
        assert!(attribute(copy, tags::IMAGE_TYPE).starts_with("DERIVED"));
        let (input, output) = (
            DicomSlice::read(file).unwrap(),
            DicomSlice::read(copy).unwrap(),
        );
        assert_eq!(output.rescale_slope, 0.5);
        // The phase encoding the shared MR FOV / Geometry group states, a frame's own.
        assert_eq!(output.phase_encoding(), Some(PhaseEncoding::UpDown));
        // Within the 12-bit stored range the frames have (the derived slice keeps it).
        let expected = denoiser
            .denoise(input.image.view())
            .unwrap()
            .mapv(|v| v.clamp(0.0, 4095.0 * 0.5));
        let worst = support::max_abs_diff(&expected, &output.image);
        assert!(worst <= 0.5, "{position}: {worst}");
    }
}

/// A slice that comes after its study was paired, denoised and sent on (a resend, a slow
/// link) is denoised at once by its contrast's single-contrast model — its partner has left
/// the spool — and joins the derived series of its own series, not a series of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_slice_joins_its_series_derived_series_at_once() {
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    // pair_wait_s is far longer than the test: the late slice must not wait for a partner.
    let (mut node, pacs, [_, _, pd_alone]) = guided_node(dir.path()).await;
    let pd = study_series(dir.path(), "PD_TSE_COR", &phantom_slices(4, 48, 40));
    let pdfs = study_series(dir.path(), "PD_TSE_FS_COR", &phantom_slices(3, 48, 40));
    // The PD series' fourth slice is held back.
    let mut first = pd[..3].to_vec();
    first.extend(pdfs.iter().cloned());
    let out = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(&first))
        .await;
    assert!(out.status.success(), "{}", said(&out));
    let arrived = node.delivered(&pacs, 6).await;
    let derived_pd = arrived
        .iter()
        .find(|p| attribute(p, tags::SERIES_DESCRIPTION) == "PD_TSE_COR denoised")
        .map(|p| attribute(p, tags::SERIES_INSTANCE_UID))
        .expect("the PD series arrived");

    let out = node
        .dcmtk("storescu", "SCANNER", "CROSSDENOISE", &paths(&pd[3..]))
        .await;
    assert!(out.status.success(), "{}", said(&out));
    let arrived = node.deliver_to(&pacs, 7).await;
    assert_eq!(node.count(|s| &s.instances_late), 1);
    let position = attribute(&pd[3], tags::IMAGE_POSITION_PATIENT);
    let late = arrived
        .iter()
        .find(|p| attribute(p, tags::IMAGE_POSITION_PATIENT) == position)
        .expect("the late slice arrived");
    assert_eq!(attribute(late, tags::SERIES_INSTANCE_UID), derived_pd);
    let mut denoiser = crossdenoise_runtime::Denoiser::open(
        &support::runtime(),
        &pd_alone,
        &DenoiserOptions::default(),
    )
    .unwrap();
    let (input, output) = (
        DicomSlice::read(&pd[3]).unwrap(),
        DicomSlice::read(late).unwrap(),
    );
    let expected = denoiser.denoise(input.image.view()).unwrap();
    let worst = support::max_abs_diff(&expected, &output.image);
    assert!(worst <= output.rescale_slope as f32, "{worst}");
}

/// A pair whose series grow after it was denoised (a sender that pauses between
/// associations longer than `series_stable_s`) is finished as one: a late slice is denoised
/// with the partner slice it would have had, kept from the pair after the originals left
/// the spool, not by the single-contrast model; late slices of both series guide each other,
/// also when one is complete while the other is still arriving. All of it joins the pair's
/// derived series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_slices_of_a_pair_are_guided_by_their_partner_slices() {
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let (pd_guided, pdfs_guided) = guided_models(dir.path());
    let pd_alone = support::test_model(dir.path(), "pd_single.onnx", &["--contrast", "pd"]);
    let pdfs_alone = support::test_model(dir.path(), "pdfs_single.onnx", &["--contrast", "pdfs"]);
    let (mut node, pacs) = node_and_pacs(dir.path(), |c| {
        c.pair_wait_s = 600.0;
        c.models.pd = Some(pd_guided.clone());
        c.models.pdfs = Some(pdfs_guided.clone());
        c.models.pd_alone = Some(pd_alone.clone());
        c.models.pdfs_alone = Some(pdfs_alone.clone());
    })
    .await;
    let (pd, pdfs) = pd_pdfs_pair(dir.path(), 5, 5);
    // First the pair without PD slices 3 and 4 nor PDFS slice 4 (PDFS 3 is denoised alone),
    // then PD 3 on its own, then PD 4, then PDFS 4 on a connection held open a second
    // longer: PD 4 is complete while its partner slice is still arriving, and waits for it.
    let mut first = pd[..3].to_vec();
    first.extend(pdfs[..4].iter().cloned());
    node.send(&first).await;
    node.delivered(&pacs, 7).await;
    node.send(&pd[3..4]).await;
    node.delivered(&pacs, 8).await;
    node.send(&pd[4..5]).await;
    send_slowly(
        node.addr.port(),
        &pdfs[4..5],
        std::time::Duration::from_secs(1),
    )
    .await;
    let arrived = node.deliver_to(&pacs, 10).await;
    assert_eq!(node.count(|s| &s.instances_late), 3);
    assert_eq!(node.count(|s| &s.instances_set_aside), 0);

    let runtime = support::runtime();
    let open = |path: &PathBuf| {
        crossdenoise_runtime::Denoiser::open(&runtime, path, &DenoiserOptions::default()).unwrap()
    };
    let read = |f: &PathBuf| DicomSlice::read(f).unwrap();
    let result = |input: &PathBuf, description: &str| {
        let copy = delivered_copy(&arrived, input, description);
        (attribute(copy, tags::SERIES_INSTANCE_UID), read(copy))
    };
    for (inputs, partners, model, alone, description) in [
        (&pd, &pdfs, &pd_guided, &pd_alone, "PD_TSE_COR"),
        (&pdfs, &pd, &pdfs_guided, &pdfs_alone, "PD_TSE_FS_COR"),
    ] {
        let mut alone = open(alone);
        let series: std::collections::HashSet<String> =
            inputs.iter().map(|f| result(f, description).0).collect();
        assert_eq!(series.len(), 1, "{description}: one derived series");
        let late = if description == "PD_TSE_COR" {
            3..5
        } else {
            4..5
        };
        for i in late {
            let expected = guided_result(model, &inputs[i], &partners[i]);
            let output = result(&inputs[i], description).1;
            let slope = output.rescale_slope as f32;
            let worst = support::max_abs_diff(&expected, &output.image);
            assert!(worst <= slope, "{description} slice {i}: {worst}");
            // Not what the single-contrast model makes of it.
            let unguided = alone.denoise(read(&inputs[i]).image.view()).unwrap();
            assert!(support::max_abs_diff(&unguided, &output.image) > 4.0 * slope);
        }
    }
}

/// Without single-contrast models, a late slice its partner's kept slices do not cover
/// waits for its partner slice like any series, and the two, sent in separate associations
/// after the pair, are each denoised with the other as guide into their pair's derived
/// series: nothing is set aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_slices_without_single_models_wait_for_their_partner_slices() {
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let (pd_guided, _) = guided_models(dir.path());
    let (mut node, pacs) = guided_pair_node(dir.path(), |c| c.pair_wait_s = 600.0).await;
    let (pd, pdfs) = pd_pdfs_pair(dir.path(), 4, 4);
    let mut first = pd[..3].to_vec();
    first.extend(pdfs[..3].iter().cloned());
    node.send(&first).await;
    node.delivered(&pacs, 6).await;
    node.send(&pd[3..]).await;
    // PD 3 has no partner slice yet: it waits (series_stable_s is 0.3 s).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(pacs.received().len(), 6, "{}", node.stats().line());
    node.send(&pdfs[3..]).await;
    let arrived = node.deliver_to(&pacs, 8).await;
    assert_eq!(node.count(|s| &s.instances_set_aside), 0);
    let late = delivered_copy(&arrived, &pd[3], "PD_TSE_COR");
    let first_pd = arrived
        .iter()
        .find(|p| attribute(p, tags::SERIES_DESCRIPTION) == "PD_TSE_COR denoised")
        .unwrap();
    assert_eq!(
        attribute(late, tags::SERIES_INSTANCE_UID),
        attribute(first_pd, tags::SERIES_INSTANCE_UID)
    );
    let expected = guided_result(&pd_guided, &pd[3], &pdfs[3]);
    let output = DicomSlice::read(late).unwrap();
    let worst = support::max_abs_diff(&expected, &output.image);
    assert!(worst <= output.rescale_slope as f32, "{worst}");
}

/// A pair of series for models trained on a coil array (served with a noise map of their
/// 8 coils): each series' noise maps are estimated from all of its slices and their
/// partners at once, as `crossdenoise denoise` estimates a folder's, so each delivered
/// slice is what the runtime makes of it within its prepared series, not alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coil_array_pair_is_denoised_with_its_series_noise_maps() {
    let dir = tempfile::tempdir().unwrap();
    let coil_model = |name: &str, contrast: &str| {
        support::test_model(
            dir.path(),
            name,
            &["--contrast", contrast, "--guided", "--noise-coils", "8"],
        )
    };
    let (pd_model, pdfs_model) = (
        coil_model("pd_coil.onnx", "pd"),
        coil_model("pdfs_coil.onnx", "pdfs"),
    );
    let (mut node, pacs) = node_and_pacs(dir.path(), |c| {
        c.models.pd = Some(pd_model.clone());
        c.models.pdfs = Some(pdfs_model.clone());
    })
    .await;
    let (pd, pdfs) = pd_pdfs_pair(dir.path(), 4, 4);
    let mut all = pd.clone();
    all.extend(pdfs.iter().cloned());
    node.send(&all).await;
    let arrived = node.deliver_to(&pacs, 8).await;
    assert_eq!(node.count(|s| &s.instances_set_aside), 0);
    for (inputs, partners, model, description) in [
        (&pd, &pdfs, &pd_model, "PD_TSE_COR"),
        (&pdfs, &pd, &pdfs_model, "PD_TSE_FS_COR"),
    ] {
        let (expected, prepared) = guided_series_result(model, inputs, partners);
        let mut apart = Vec::new();
        assert_eq!(
            prepared,
            crossdenoise_runtime::SeriesNoise::Pooled { slices: 4 },
            "{description}"
        );
        for (i, input) in inputs.iter().enumerate() {
            let copy = delivered_copy(&arrived, input, description);
            let output = DicomSlice::read(copy).unwrap();
            let slope = output.rescale_slope as f32;
            let worst = support::max_abs_diff(&expected[i], &output.image);
            assert!(worst <= slope, "{description} slice {i}: {worst}");
            let alone = guided_result(model, input, &partners[i]);
            apart.push(support::max_abs_diff(&alone, &output.image) / slope);
        }
        // Not what the slices make alone, each with maps of its own.
        assert!(
            apart.iter().any(|d| *d > 2.0),
            "{description}: served as alone ({apart:?} rescale steps apart)"
        );
    }
}
