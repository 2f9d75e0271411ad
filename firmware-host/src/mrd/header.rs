//! What an MRD stream's XML header states of its acquisition that the noise maps follow.

use crossdenoise_image::noise_map::Stated;

/// What `header` states: parallel imaging's in-plane acceleration, from the first
/// encoding's `parallelImaging/accelerationFactor/kspace_encoding_step_1` (the phase
/// encoding's; [`Stated::acceleration_factor`]). Nothing where it says none, or is not
/// XML. The phase-encoding direction is not stated: an MRD image's axes are the
/// reconstruction's, which need not follow the encoding's.
pub fn stated(header: &str) -> Stated {
    let acceleration = roxmltree::Document::parse(header).ok().and_then(|doc| {
        let encoding = doc
            .descendants()
            .find(|n| n.tag_name().name() == "encoding")?;
        let factor = encoding
            .descendants()
            .find(|n| n.tag_name().name() == "parallelImaging")?
            .descendants()
            .find(|n| n.tag_name().name() == "accelerationFactor")?
            .children()
            .find(|n| n.tag_name().name() == "kspace_encoding_step_1")?
            .text()?
            .trim()
            .parse::<f64>()
            .ok()?;
        Stated::acceleration_factor(factor)
    });
    Stated {
        phase_encoding: None,
        acceleration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(parallel: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?><ismrmrdHeader xmlns=\"http://www.ismrm.org/ISMRMRD\">\
             <encoding><trajectory>cartesian</trajectory>{parallel}</encoding>\
             <encoding><parallelImaging><accelerationFactor>\
             <kspace_encoding_step_1>4</kspace_encoding_step_1>\
             </accelerationFactor></parallelImaging></encoding></ismrmrdHeader>"
        )
    }

    fn factor(step_1: &str) -> String {
        header(&format!(
            "<parallelImaging><accelerationFactor>\
             <kspace_encoding_step_1>{step_1}</kspace_encoding_step_1>\
             <kspace_encoding_step_2>1</kspace_encoding_step_2>\
             </accelerationFactor><calibrationMode>embedded</calibrationMode></parallelImaging>"
        ))
    }

    #[test]
    fn the_first_encodings_in_plane_acceleration_is_stated() {
        assert_eq!(stated(&factor("3")).acceleration, Some(3));
        assert_eq!(stated(&factor(" 2 ")).acceleration, Some(2));
        assert_eq!(stated(&factor("1")).acceleration, Some(1));
        // Not a factor: the configured acceleration holds.
        for bad in ["0", "two", ""] {
            assert_eq!(stated(&factor(bad)).acceleration, None, "{bad:?}");
        }
        // The first encoding states none: the second's is not its images'.
        assert_eq!(stated(&header("")), Stated::NOTHING);
        assert_eq!(stated("not xml"), Stated::NOTHING);
    }
}
