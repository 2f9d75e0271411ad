//! MRD images: the 198-byte `ISMRMRD_ImageHeader` (packed to 2 bytes), the attribute XML and
//! the pixels, plus the conversions the daemon needs between pixels and `f32` planes.

use ndarray::Array2;

use super::wire::{Put, Reader};

/// `ISMRMRD_DataTypes`: how the pixels after the attributes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum DataType {
    U16 = 1,
    I16 = 2,
    U32 = 3,
    I32 = 4,
    F32 = 5,
    F64 = 6,
    ComplexF32 = 7,
    ComplexF64 = 8,
}

impl DataType {
    pub fn from_code(code: u16) -> Option<Self> {
        use DataType::*;
        [U16, I16, U32, I32, F32, F64, ComplexF32, ComplexF64]
            .into_iter()
            .find(|d| *d as u16 == code)
    }

    /// Bytes per pixel.
    pub fn size(self) -> usize {
        match self {
            DataType::U16 | DataType::I16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::F64 | DataType::ComplexF32 => 8,
            DataType::ComplexF64 => 16,
        }
    }

    /// The values an integer type holds; `None` for floating point.
    pub fn integer_range(self) -> Option<(f64, f64)> {
        match self {
            DataType::U16 => Some((0.0, f64::from(u16::MAX))),
            DataType::I16 => Some((f64::from(i16::MIN), f64::from(i16::MAX))),
            DataType::U32 => Some((0.0, f64::from(u32::MAX))),
            DataType::I32 => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
            _ => None,
        }
    }

    pub fn is_complex(self) -> bool {
        matches!(self, DataType::ComplexF32 | DataType::ComplexF64)
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::U16 => "ushort",
            DataType::I16 => "short",
            DataType::U32 => "uint",
            DataType::I32 => "int",
            DataType::F32 => "float",
            DataType::F64 => "double",
            DataType::ComplexF32 => "complex float",
            DataType::ComplexF64 => "complex double",
        }
    }
}

/// `ISMRMRD_ImageTypes` value of a magnitude image, the only kind the model was trained on.
pub const IMTYPE_MAGNITUDE: u16 = 1;

/// Human name of an `image_type` value, for log lines.
pub fn image_type_name(code: u16) -> &'static str {
    match code {
        1 => "magnitude",
        2 => "phase",
        3 => "real",
        4 => "imaginary",
        5 => "complex",
        6 => "rgb",
        _ => "unknown",
    }
}

/// `ISMRMRD_ImageHeader`, field for field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageHeader {
    pub version: u16,
    /// Raw [`DataType`] code: kept raw so an unknown code can be reported, not lost.
    pub data_type: u16,
    pub flags: u64,
    pub measurement_uid: u32,
    /// Columns (x, fastest), rows (y), slices (z).
    pub matrix_size: [u16; 3],
    pub field_of_view: [f32; 3],
    pub channels: u16,
    pub position: [f32; 3],
    pub read_dir: [f32; 3],
    pub phase_dir: [f32; 3],
    pub slice_dir: [f32; 3],
    pub patient_table_position: [f32; 3],
    pub average: u16,
    pub slice: u16,
    pub contrast: u16,
    pub phase: u16,
    pub repetition: u16,
    pub set: u16,
    pub acquisition_time_stamp: u32,
    pub physiology_time_stamp: [u32; 3],
    pub image_type: u16,
    pub image_index: u16,
    pub image_series_index: u16,
    pub user_int: [i32; 8],
    pub user_float: [f32; 8],
    /// Length of the attribute XML; the stream's own u64 length prefix is what sizes it.
    pub attribute_string_len: u32,
}

impl ImageHeader {
    pub const SIZE: usize = 198;

    /// Offsets of the fields that size the message (for `check`).
    pub(crate) const DATA_TYPE_AT: usize = 2;
    pub(crate) const MATRIX_SIZE_AT: usize = 16;
    pub(crate) const CHANNELS_AT: usize = 34;

    /// Reads a header from exactly [`Self::SIZE`] bytes.
    pub fn read(bytes: &[u8]) -> Self {
        assert_eq!(bytes.len(), Self::SIZE, "image header length");
        let mut r = Reader::new(bytes);
        ImageHeader {
            version: r.u16(),
            data_type: r.u16(),
            flags: r.u64(),
            measurement_uid: r.u32(),
            matrix_size: r.u16s(),
            field_of_view: r.f32s(),
            channels: r.u16(),
            position: r.f32s(),
            read_dir: r.f32s(),
            phase_dir: r.f32s(),
            slice_dir: r.f32s(),
            patient_table_position: r.f32s(),
            average: r.u16(),
            slice: r.u16(),
            contrast: r.u16(),
            phase: r.u16(),
            repetition: r.u16(),
            set: r.u16(),
            acquisition_time_stamp: r.u32(),
            physiology_time_stamp: r.u32s(),
            image_type: r.u16(),
            image_index: r.u16(),
            image_series_index: r.u16(),
            user_int: r.i32s(),
            user_float: r.f32s(),
            attribute_string_len: r.u32(),
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u16(self.version);
        out.put_u16(self.data_type);
        out.put_u64(self.flags);
        out.put_u32(self.measurement_uid);
        self.matrix_size.iter().for_each(|&v| out.put_u16(v));
        self.field_of_view.iter().for_each(|&v| out.put_f32(v));
        out.put_u16(self.channels);
        for arr in [
            &self.position,
            &self.read_dir,
            &self.phase_dir,
            &self.slice_dir,
            &self.patient_table_position,
        ] {
            arr.iter().for_each(|&v| out.put_f32(v));
        }
        for v in [
            self.average,
            self.slice,
            self.contrast,
            self.phase,
            self.repetition,
            self.set,
        ] {
            out.put_u16(v);
        }
        out.put_u32(self.acquisition_time_stamp);
        self.physiology_time_stamp
            .iter()
            .for_each(|&v| out.put_u32(v));
        out.put_u16(self.image_type);
        out.put_u16(self.image_index);
        out.put_u16(self.image_series_index);
        self.user_int.iter().for_each(|&v| out.put_i32(v));
        self.user_float.iter().for_each(|&v| out.put_f32(v));
        out.put_u32(self.attribute_string_len);
        debug_assert_eq!(out.len() - start, Self::SIZE);
    }

    pub fn data_type(&self) -> Option<DataType> {
        DataType::from_code(self.data_type)
    }

    /// Number of pixels: x * y * z * channels.
    pub fn pixel_count(&self) -> u64 {
        let [x, y, z] = self.matrix_size.map(u64::from);
        x * y * z * u64::from(self.channels)
    }
}

/// One image message: header, attribute XML (an ISMRMRD MetaContainer) and raw pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub header: ImageHeader,
    pub attributes: String,
    /// How `attributes` travel on the wire. Senders that copy DICOM text (ISO_IR 100) write
    /// Latin-1; such bytes are read as Latin-1 and written back as the same bytes, so the
    /// image is processed and its attributes come back byte for byte.
    pub attribute_encoding: TextEncoding,
    /// Pixels in the header's data type, little-endian, x fastest, then y, z, channel.
    pub data: Vec<u8>,
}

/// The byte encoding of an image's attribute text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEncoding {
    #[default]
    Utf8,
    /// One byte per character (U+0000..U+00FF): what is not UTF-8 is read this way, which
    /// keeps every byte whatever the sender's 8-bit character set was.
    Latin1,
}

impl TextEncoding {
    /// Reads `bytes` as UTF-8, or as Latin-1 when they are not UTF-8.
    pub fn decode(bytes: &[u8]) -> (String, TextEncoding) {
        match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_owned(), TextEncoding::Utf8),
            Err(_) => (
                bytes.iter().map(|&b| char::from(b)).collect(),
                TextEncoding::Latin1,
            ),
        }
    }

    /// Writes `text` in this encoding; a Latin-1 text that has gained a character beyond
    /// U+00FF is written as UTF-8 instead (nothing is replaced).
    pub fn encode(self, text: &str, out: &mut Vec<u8>) {
        if self == TextEncoding::Latin1 && text.chars().all(|c| u32::from(c) <= 0xFF) {
            out.extend(text.chars().map(|c| u32::from(c) as u8));
        } else {
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// Why an image cannot be turned into planes for the model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlaneError {
    #[error("image_type is {} ({code}), not magnitude", image_type_name(*code))]
    NotMagnitude { code: u16 },
    #[error("data_type {0} is complex")]
    Complex(&'static str),
    #[error("unknown data_type {0}")]
    UnknownDataType(u16),
    #[error("empty matrix {0:?}")]
    Empty([u16; 3]),
    #[error("{got} pixels for {what} do not match the matrix {matrix:?} x {channels} channels")]
    Size {
        what: &'static str,
        got: usize,
        matrix: [u16; 3],
        channels: u16,
    },
}

impl Image {
    /// Builds a magnitude image of one `f32` plane (rows x columns).
    pub fn from_plane(plane: &Array2<f32>, data_type: DataType) -> Self {
        let (rows, cols) = plane.dim();
        let header = ImageHeader {
            version: 1,
            data_type: data_type as u16,
            matrix_size: [cols as u16, rows as u16, 1],
            field_of_view: [cols as f32, rows as f32, 1.0],
            channels: 1,
            read_dir: [1.0, 0.0, 0.0],
            phase_dir: [0.0, 1.0, 0.0],
            slice_dir: [0.0, 0.0, 1.0],
            image_type: IMTYPE_MAGNITUDE,
            ..ImageHeader::default()
        };
        let mut image = Image {
            header,
            attributes: String::new(),
            attribute_encoding: TextEncoding::Utf8,
            data: Vec::new(),
        };
        image
            .set_planes(std::slice::from_ref(plane))
            .expect("one plane of the header's size");
        image
    }

    /// The image as `z * channels` planes of rows x columns, for denoising: magnitude, real
    /// data types only.
    pub fn planes(&self) -> Result<Vec<Array2<f32>>, PlaneError> {
        let h = &self.header;
        if h.image_type != IMTYPE_MAGNITUDE {
            return Err(PlaneError::NotMagnitude { code: h.image_type });
        }
        let dt = h
            .data_type()
            .ok_or(PlaneError::UnknownDataType(h.data_type))?;
        if dt.is_complex() {
            return Err(PlaneError::Complex(dt.name()));
        }
        let [x, y, z] = h.matrix_size.map(usize::from);
        let n_planes = z * usize::from(h.channels);
        if x == 0 || y == 0 || n_planes == 0 {
            return Err(PlaneError::Empty(h.matrix_size));
        }
        let values = decode_pixels(&self.data, dt);
        if values.len() != x * y * n_planes {
            return Err(PlaneError::Size {
                what: "the data",
                got: values.len(),
                matrix: h.matrix_size,
                channels: h.channels,
            });
        }
        Ok(values
            .chunks_exact(x * y)
            .map(|p| Array2::from_shape_vec((y, x), p.to_vec()).expect("plane size"))
            .collect())
    }

    /// Replaces the pixels with `planes`, converted to the header's data type (integers
    /// rounded and clamped to the type's range).
    pub fn set_planes(&mut self, planes: &[Array2<f32>]) -> Result<(), PlaneError> {
        let h = &self.header;
        let dt = h
            .data_type()
            .ok_or(PlaneError::UnknownDataType(h.data_type))?;
        if dt.is_complex() {
            return Err(PlaneError::Complex(dt.name()));
        }
        let [x, y, z] = h.matrix_size.map(usize::from);
        let total: usize = planes.iter().map(|p| p.len()).sum();
        if planes.len() != z * usize::from(h.channels) || planes.iter().any(|p| p.dim() != (y, x)) {
            return Err(PlaneError::Size {
                what: "the new planes",
                got: total,
                matrix: h.matrix_size,
                channels: h.channels,
            });
        }
        let mut data = Vec::with_capacity(total * dt.size());
        for plane in planes {
            encode_pixels(plane.iter().copied(), dt, &mut data);
        }
        self.data = data;
        Ok(())
    }
}

fn decode_pixels(data: &[u8], dt: DataType) -> Vec<f32> {
    macro_rules! read {
        ($t:ty) => {
            data.chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")) as f32)
                .collect()
        };
    }
    match dt {
        DataType::U16 => read!(u16),
        DataType::I16 => read!(i16),
        DataType::U32 => read!(u32),
        DataType::I32 => read!(i32),
        DataType::F32 => read!(f32),
        DataType::F64 => read!(f64),
        DataType::ComplexF32 | DataType::ComplexF64 => unreachable!("refused before"),
    }
}

fn encode_pixels(values: impl Iterator<Item = f32>, dt: DataType, out: &mut Vec<u8>) {
    // `as` from f32 to an integer saturates and maps NaN to 0: the clamping wanted here.
    macro_rules! write {
        ($t:ty) => {
            for v in values {
                out.extend_from_slice(&(v.round() as $t).to_le_bytes());
            }
        };
    }
    match dt {
        DataType::U16 => write!(u16),
        DataType::I16 => write!(i16),
        DataType::U32 => write!(u32),
        DataType::I32 => write!(i32),
        DataType::F32 => values.for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DataType::F64 => values.for_each(|v| out.extend_from_slice(&f64::from(v).to_le_bytes())),
        DataType::ComplexF32 | DataType::ComplexF64 => unreachable!("refused before"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_is_198_bytes() {
        let h = ImageHeader {
            version: 1,
            data_type: 5,
            flags: 0x0102_0304_0506_0708,
            matrix_size: [320, 256, 1],
            image_series_index: 7,
            user_int: [-1, 2, 3, 4, 5, 6, 7, 8],
            user_float: [0.5; 8],
            attribute_string_len: 12,
            ..ImageHeader::default()
        };
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(out.len(), ImageHeader::SIZE);
        assert_eq!(ImageHeader::read(&out), h);
    }

    #[test]
    fn integer_pixels_are_rounded_and_clamped() {
        let plane = Array2::from_shape_vec((1, 4), vec![-3.0, 1.6, 70000.0, f32::NAN]).unwrap();
        let img = Image::from_plane(&plane, DataType::U16);
        assert_eq!(img.data.len(), 8);
        let back = img.planes().unwrap();
        assert_eq!(back[0].as_slice().unwrap(), &[0.0, 2.0, 65535.0, 0.0]);
    }

    #[test]
    fn planes_follow_x_fastest_then_y_then_z() {
        let mut img = Image::from_plane(&Array2::zeros((2, 3)), DataType::F32);
        img.header.matrix_size = [3, 2, 2];
        img.data = (0..12u8).flat_map(|v| f32::from(v).to_le_bytes()).collect();
        let planes = img.planes().unwrap();
        assert_eq!(planes.len(), 2);
        assert_eq!(planes[0][[1, 0]], 3.0);
        assert_eq!(planes[1][[0, 2]], 8.0);
    }

    #[test]
    fn complex_and_phase_images_are_refused_by_name() {
        let mut img = Image::from_plane(&Array2::zeros((2, 2)), DataType::F32);
        img.header.image_type = 2;
        assert_eq!(
            img.planes().unwrap_err().to_string(),
            "image_type is phase (2), not magnitude"
        );
        img.header.image_type = IMTYPE_MAGNITUDE;
        img.header.data_type = DataType::ComplexF32 as u16;
        assert!(img.planes().unwrap_err().to_string().contains("complex"));
    }
}
