//! The MRD wire format against byte sequences written by hand from the ISMRMRD structs and
//! the "MRD Streaming Format" description, decoded and encoded both ways.

use crossdenoise_host::mrd::message::{self, DecodeError};
use crossdenoise_host::mrd::{DataType, Image, Message};

const LIMIT: usize = 1 << 20;

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Decodes `bytes` as exactly one message and checks it encodes back to the same bytes.
fn round_trip(bytes: &[u8]) -> Message {
    let (msg, used) = message::decode(bytes, LIMIT).unwrap();
    assert_eq!(used, bytes.len(), "the whole message is consumed");
    assert_eq!(
        msg.to_bytes(),
        bytes,
        "{} encodes back to its bytes",
        msg.kind()
    );
    // Every proper prefix is incomplete, never an error or a different message.
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        assert_eq!(
            message::decode(&bytes[..cut], LIMIT).unwrap_err(),
            DecodeError::Incomplete,
            "prefix of {cut} bytes"
        );
    }
    msg
}

#[test]
fn close_is_its_id_alone() {
    assert_eq!(round_trip(&[0x04, 0x00]), Message::Close);
}

#[test]
fn text_bodies_are_u32_length_then_bytes_with_a_counted_nul() {
    let bytes = [0x05, 0x00, 0x03, 0x00, 0x00, 0x00, b'h', b'i', 0x00];
    assert_eq!(round_trip(&bytes), Message::Text("hi".into()));
    let header = [0x03, 0x00, 0x04, 0x00, 0x00, 0x00, b'<', b'x', b'>', 0x00];
    assert_eq!(round_trip(&header), Message::Header("<x>".into()));
    let config = [0x02, 0x00, 0x02, 0x00, 0x00, 0x00, b'c', 0x00];
    assert_eq!(round_trip(&config), Message::ConfigText("c".into()));
    // A sender that does not count a NUL is read the same.
    let bare = [0x05, 0x00, 0x02, 0x00, 0x00, 0x00, b'h', b'i'];
    assert_eq!(
        message::decode(&bare, LIMIT).unwrap().0,
        Message::Text("hi".into())
    );
}

#[test]
fn config_file_is_a_nul_padded_1024_byte_name() {
    let mut bytes = vec![0x01, 0x00];
    bytes.extend_from_slice(b"crossdenoise");
    bytes.resize(2 + 1024, 0);
    assert_eq!(
        round_trip(&bytes),
        Message::ConfigFile("crossdenoise".into())
    );
}

#[test]
fn image_is_header_u64_attribute_length_attributes_pixels() {
    // A 2 x 1 ushort magnitude image, field offsets from ISMRMRD_ImageHeader (pack 2).
    let mut header = [0u8; 198];
    put(&mut header, 0, &1u16.to_le_bytes()); // version
    put(&mut header, 2, &1u16.to_le_bytes()); // data_type: ushort
    put(&mut header, 4, &0x8000_0000_0000_0001u64.to_le_bytes()); // flags
    put(&mut header, 12, &42u32.to_le_bytes()); // measurement_uid
    put(&mut header, 16, &[2, 0, 1, 0, 1, 0]); // matrix_size 2 x 1 x 1
    put(&mut header, 22, &220.0f32.to_le_bytes()); // field_of_view[0]
    put(&mut header, 34, &1u16.to_le_bytes()); // channels
    put(&mut header, 100, &3u16.to_le_bytes()); // contrast
    put(&mut header, 124, &1u16.to_le_bytes()); // image_type: magnitude
    put(&mut header, 126, &7u16.to_le_bytes()); // image_index
    put(&mut header, 128, &5u16.to_le_bytes()); // image_series_index
    put(&mut header, 130, &(-9i32).to_le_bytes()); // user_int[0]
    put(&mut header, 190, &1.5f32.to_le_bytes()); // user_float[7]
    let attributes = b"<ismrmrdMeta></ismrmrdMeta>";
    put(&mut header, 194, &(attributes.len() as u32).to_le_bytes());
    let mut bytes = vec![0xFE, 0x03]; // 1022
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&(attributes.len() as u64).to_le_bytes());
    bytes.extend_from_slice(attributes);
    bytes.extend_from_slice(&[10, 0, 0x20, 0x03]); // pixels 10, 800

    let Message::Image(image) = round_trip(&bytes) else {
        panic!("an image")
    };
    let h = &image.header;
    assert_eq!(h.data_type(), Some(DataType::U16));
    assert_eq!(h.flags, 0x8000_0000_0000_0001);
    assert_eq!(h.measurement_uid, 42);
    assert_eq!(h.matrix_size, [2, 1, 1]);
    assert_eq!(h.field_of_view[0], 220.0);
    assert_eq!(h.contrast, 3);
    assert_eq!((h.image_index, h.image_series_index), (7, 5));
    assert_eq!(h.user_int[0], -9);
    assert_eq!(h.user_float[7], 1.5);
    assert_eq!(image.attributes, "<ismrmrdMeta></ismrmrdMeta>");
    let planes = image.planes().unwrap();
    assert_eq!(planes[0].as_slice().unwrap(), &[10.0, 800.0]);
}

#[test]
fn an_image_built_in_rust_decodes_to_itself() {
    let plane = ndarray::Array2::from_shape_fn((3, 5), |(r, c)| (r * 5 + c) as f32 * 0.5);
    for dt in [DataType::F32, DataType::F64, DataType::I16, DataType::U32] {
        let mut image = Image::from_plane(&plane, dt);
        image.attributes =
            "<ismrmrdMeta><meta><name>A</name><value>1</value></meta></ismrmrdMeta>".into();
        let bytes = Message::Image(image.clone()).to_bytes();
        assert_eq!(
            bytes.len(),
            2 + 198 + 8 + image.attributes.len() + 15 * dt.size()
        );
        let (back, _) = message::decode(&bytes, LIMIT).unwrap();
        let Message::Image(mut back) = back else {
            panic!()
        };
        // The header carries the attribute length the encoder wrote.
        back.header.attribute_string_len = 0;
        assert_eq!(back, image, "{}", dt.name());
    }
}

#[test]
fn acquisition_is_sized_by_samples_channels_and_trajectory() {
    let mut header = [0u8; 340];
    put(&mut header, 34, &2u16.to_le_bytes()); // number_of_samples
    put(&mut header, 36, &4u16.to_le_bytes()); // available_channels
    put(&mut header, 38, &1u16.to_le_bytes()); // active_channels
    put(&mut header, 176, &2u16.to_le_bytes()); // trajectory_dimensions
    let mut bytes = vec![0xF0, 0x03]; // 1008
    bytes.extend_from_slice(&header);
    bytes.extend((0..16u8).map(|i| i + 100)); // trajectory: 2 samples x 2 dims x f32
    bytes.extend((0..16u8).map(|i| i + 200)); // data: 1 channel x 2 samples x complex f32
    let Message::Acquisition(acq) = round_trip(&bytes) else {
        panic!("an acquisition")
    };
    assert_eq!(acq.body.len(), 32);
}

#[test]
fn waveform_header_is_40_bytes_then_u32_samples() {
    let mut header = [0u8; 40];
    put(&mut header, 0, &1u16.to_le_bytes()); // version (then 6 bytes of alignment)
    put(&mut header, 28, &3u16.to_le_bytes()); // number_of_samples
    put(&mut header, 30, &2u16.to_le_bytes()); // channels
    put(&mut header, 36, &11u16.to_le_bytes()); // waveform_id
    let mut bytes = vec![0x02, 0x04]; // 1026
    bytes.extend_from_slice(&header);
    bytes.extend(std::iter::repeat_n(7u8, 3 * 2 * 4));
    let Message::Waveform(w) = round_trip(&bytes) else {
        panic!("a waveform")
    };
    assert_eq!(w.body.len(), 24);
}

#[test]
fn bad_messages_are_named_errors() {
    assert_eq!(
        message::decode(&[0xE7, 0x03, 0, 0], LIMIT).unwrap_err(),
        DecodeError::UnknownId(999)
    );
    let huge = [0x05, 0x00, 0xFF, 0xFF, 0xFF, 0xFF];
    let err = message::decode(&huge, LIMIT).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::TooLarge {
                kind: "text",
                size: 0xFFFF_FFFF,
                ..
            }
        ),
        "{err}"
    );
    // An image whose pixels would be 65535^3 x 16 bytes is refused from its header alone.
    let mut image = vec![0xFE, 0x03];
    let mut header = [0xFFu8; 198];
    put(&mut header, 2, &8u16.to_le_bytes());
    image.extend_from_slice(&header);
    image.extend_from_slice(&0u64.to_le_bytes());
    let err = message::decode(&image, LIMIT).unwrap_err();
    assert!(
        err.to_string().starts_with("image message declares"),
        "{err}"
    );
    put(&mut image, 4, &99u16.to_le_bytes());
    assert_eq!(
        message::decode(&image, LIMIT).unwrap_err().to_string(),
        "image message: unknown data_type 99"
    );
}
