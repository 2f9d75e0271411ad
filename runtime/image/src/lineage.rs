//! Where a derived DICOM image came from, written into it, so that a PACS, a viewer or an
//! auditor can follow it back: the instance it was made from and the guide that steered it
//! (SourceImageSequence, each with its purpose of reference), how it was made
//! (DerivationDescription, DerivationCodeSequence), by what (ContributingEquipmentSequence
//! with crossdenoise's version and the model's config hash), and a SeriesNumber of its own.
//!
//! The codes are the closest DICOM offers (PS3.16): "Smoothing" (DCM 113087, CID 7203 Image
//! Derivation) for the denoising, "Source image for image processing operation" (DCM 121322,
//! CID 7202) for the input, "Anatomic image" (DCM 121338, CID 7202) for the partner contrast
//! that guides it, and "Processing Equipment" (DCM 109102, CID 7005) for crossdenoise.

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// A referenced instance: SOP Class UID and SOP Instance UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub sop_class: String,
    pub sop_instance: String,
}

/// What a derived image records of its making.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// DerivationDescription: the software and the model, in words.
    pub description: String,
    /// SoftwareVersions of the contributing equipment: crossdenoise's version and the
    /// model's config hash.
    pub software: Vec<String>,
    /// The partner contrast's instance that guided the model, if any.
    pub guide: Option<Reference>,
    /// Added to the source's SeriesNumber (the derived series is a series of its own).
    pub series_number_offset: i64,
}

impl Lineage {
    /// A lineage without a guide, for `description`, by this version of crossdenoise.
    pub fn new(description: impl Into<String>, config_hash: Option<&str>) -> Self {
        let mut software = vec![format!("crossdenoise {}", env!("CARGO_PKG_VERSION"))];
        if let Some(hash) = config_hash {
            software.push(format!("model config {hash}"));
        }
        Lineage {
            description: description.into(),
            software,
            guide: None,
            series_number_offset: 1000,
        }
    }

    /// Writes the lineage into `out`, a derived copy of the instance `source`.
    pub fn write(
        &self,
        out: &mut InMemDicomObject,
        source: &Reference,
        series_number: Option<i64>,
    ) {
        put(out, tags::DERIVATION_DESCRIPTION, VR::ST, &self.description);
        out.put(sequence(
            tags::DERIVATION_CODE_SEQUENCE,
            vec![code_in("113087", "Smoothing")],
        ));
        let mut sources = vec![referenced(
            source,
            "121322",
            "Source image for image processing operation",
        )];
        if let Some(guide) = &self.guide {
            sources.push(referenced(guide, "121338", "Anatomic image"));
        }
        out.put(sequence(tags::SOURCE_IMAGE_SEQUENCE, sources));
        // Earlier contributors (a scanner's own post-processing) stay; this one is added.
        let mut equipment: Vec<InMemDicomObject> = out
            .element_opt(tags::CONTRIBUTING_EQUIPMENT_SEQUENCE)
            .ok()
            .flatten()
            .and_then(|e| e.items().map(|items| items.to_vec()))
            .unwrap_or_default();
        let mut item = InMemDicomObject::new_empty();
        put(&mut item, tags::MANUFACTURER, VR::LO, "crossdenoise");
        put(
            &mut item,
            tags::MANUFACTURER_MODEL_NAME,
            VR::LO,
            "crossdenoise",
        );
        item.put(DataElement::new(
            tags::SOFTWARE_VERSIONS,
            VR::LO,
            PrimitiveValue::Strs(self.software.clone().into()),
        ));
        put(
            &mut item,
            tags::CONTRIBUTION_DESCRIPTION,
            VR::ST,
            "denoised (self-supervised network)",
        );
        item.put(sequence(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![code_in("109102", "Processing Equipment")],
        ));
        equipment.push(item);
        out.put(sequence(tags::CONTRIBUTING_EQUIPMENT_SEQUENCE, equipment));
        if let Some(n) = series_number {
            put(
                out,
                tags::SERIES_NUMBER,
                VR::IS,
                &(n + self.series_number_offset).to_string(),
            );
        }
    }
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(
        tag,
        vr,
        PrimitiveValue::from(value.to_string()),
    ));
}

fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// A code item of the DICOM scheme (DCM).
fn code_in(value: &str, meaning: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tags::CODE_VALUE, VR::SH, value);
    put(&mut item, tags::CODING_SCHEME_DESIGNATOR, VR::SH, "DCM");
    put(&mut item, tags::CODE_MEANING, VR::LO, meaning);
    item
}

/// A SourceImageSequence item: the instance and why it is referenced.
fn referenced(r: &Reference, value: &str, meaning: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put(
        &mut item,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        &r.sop_class,
    );
    put(
        &mut item,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &r.sop_instance,
    );
    item.put(sequence(
        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
        vec![code_in(value, meaning)],
    ));
    item
}
