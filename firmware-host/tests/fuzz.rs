//! The daemon's parsers under generated and mutated input: MRD messages (random bytes,
//! valid messages with bytes changed, cut or extended, and streams of them), recorded MRD
//! `.h5` files, DIMSE command sets and host.toml.
//! Never a panic; a decoded message never took an allocation beyond the bytes it came in;
//! a config is loaded or refused with an error naming the file. `PROPTEST_CASES` sets the
//! cases per property.

use crossdenoise_test_support::fuzz::{self, Recording};

#[global_allocator]
static ALLOCATOR: Recording = Recording;
use crossdenoise_test_support as support;

use crossdenoise_host::HostConfig;
use crossdenoise_host::dicom::dimse;
use crossdenoise_host::mrd::message::{self, DecodeError};
use crossdenoise_host::mrd::{DataType, Image, Message, Meta};
use fuzz::{cases, largest_allocation, mutation};
use proptest::prelude::*;

const LIMIT: usize = 1 << 20;

/// Valid messages of every kind the daemon reads.
fn seeds() -> Vec<Vec<u8>> {
    let plane = ndarray::Array2::from_shape_fn((5, 7), |(r, c)| (r * 7 + c) as f32);
    let mut image = Image::from_plane(&plane, DataType::U16);
    let mut meta = Meta::new();
    meta.set("SequenceDescription", vec!["PD_TSE_FS_COR".into()]);
    image.attributes = meta.to_xml();
    [
        Message::ConfigFile("crossdenoise".into()),
        Message::ConfigText("<config/>".into()),
        Message::Header("<ismrmrdHeader/>".into()),
        Message::Text("{\"send_original\": true}".into()),
        Message::Image(image),
        Message::Close,
    ]
    .iter()
    .map(Message::to_bytes)
    .collect()
}

/// Decodes every message at the front of `bytes` in turn, as the connection's reader does,
/// and checks the bound on each decode's allocations.
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let (result, largest) = largest_allocation(|| message::decode(rest, LIMIT));
        match result {
            Ok((msg, used)) => {
                prop_assert!(used > 0 && used <= rest.len());
                prop_assert!(
                    largest <= 2 * used + 4096,
                    "{} bytes allocated for a {}-byte message",
                    largest,
                    used
                );
                // What was decoded encodes again (the daemon sends it back).
                let _ = msg.to_bytes();
                at += used;
            }
            Err(DecodeError::Incomplete) => {
                prop_assert!(largest <= 4096, "{} bytes allocated for nothing", largest);
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn random_bytes_after_any_id_decode_or_fail(id in 0u16..12, body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut bytes = id.to_le_bytes().to_vec();
        bytes.extend(body);
        decode_all(&bytes)?;
    }

    #[test]
    fn mutated_messages_decode_or_fail(pick in 0usize..6, m in mutation()) {
        decode_all(&m.apply(&seeds()[pick]))?;
    }

    #[test]
    fn a_stream_of_valid_messages_decodes_to_itself(picks in prop::collection::vec(0usize..6, 1..12)) {
        let seeds = seeds();
        let stream: Vec<u8> = picks.iter().flat_map(|&k| seeds[k].clone()).collect();
        let mut at = 0;
        for &k in &picks {
            let (msg, used) = message::decode(&stream[at..], LIMIT).unwrap();
            prop_assert_eq!(msg.to_bytes(), seeds[k].clone());
            at += used;
        }
        prop_assert_eq!(at, stream.len());
    }

    #[test]
    fn mutated_dimse_commands_parse_or_fail_within_their_bytes(m in mutation()) {
        // A C-ECHO-RQ as DCMTK's echoscu sends it (Implicit VR LE, group length first).
        let seed: &[u8] = &[
            0, 0, 0, 0, 4, 0, 0, 0, 56, 0, 0, 0, 0, 0, 2, 0, 18, 0, 0, 0, b'1', b'.', b'2', b'.',
            b'8', b'4', b'0', b'.', b'1', b'0', b'0', b'0', b'8', b'.', b'1', b'.', b'1', 0, 0,
            0, 0, 1, 2, 0, 0, 0, 48, 0, 0, 0, 16, 1, 2, 0, 0, 0, 1, 0, 0, 0, 0, 8, 2, 0, 0, 0,
            1, 1,
        ];
        let echo = matches!(dimse::parse(seed), Ok(dimse::Request::Echo { message_id: 1, .. }));
        prop_assert!(echo, "the seed is a C-ECHO-RQ");
        let bytes = m.apply(seed);
        let (parsed, largest) = largest_allocation(|| dimse::parse(&bytes));
        if let Ok(request) = parsed {
            // Whatever it read, the answer's group length counts what follows it.
            let rsp = dimse::response(&request, dimse::Status::Success);
            let group = u32::from_le_bytes([rsp[8], rsp[9], rsp[10], rsp[11]]) as usize;
            prop_assert_eq!(group, rsp.len() - 12);
        }
        prop_assert!(largest <= 64 + 16 * bytes.len(), "{} bytes for {}", largest, bytes.len());
    }

    #[test]
    fn mutated_host_configs_load_or_name_the_file(
        writes in prop::collection::vec((any::<usize>(), 0x20u8..0x7F), 1..6),
    ) {
        let seed = include_bytes!("../../deploy/host.toml");
        let mut bytes = seed.to_vec();
        for (at, v) in writes {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = HostConfig::load(&path) {
            prop_assert!(e.to_string().contains("host.toml"), "{}", e);
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn mutated_mrd_recordings_are_read_or_refused(m in mutation()) {
        // One recording (written by the ismrmrd-python layout) for every case.
        static SEED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let seed = SEED.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("rec.h5");
            support::reference(&["mrd-h5".into(), p.display().to_string()]);
            std::fs::read(p).unwrap()
        });
        let bytes = m.apply(seed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.h5");
        std::fs::write(&path, &bytes).unwrap();
        let (read, largest) =
            largest_allocation(|| crossdenoise_host::mrd::h5::read_images(&path));
        prop_assert!(
            // A chunked dataset may be deflated: up to ~1032 bytes per byte of file.
            largest <= 1100 * bytes.len() + (1 << 20),
            "{} bytes allocated at once for a {}-byte file",
            largest,
            bytes.len()
        );
        if let Err(e) = read {
            prop_assert!(e.to_string().contains("m.h5"), "{}", e);
        }
    }
}
