//! How a noise map is estimated: its tiles' size and shape, smoothing and coils.

use crate::{Error, Result};

/// How the map is estimated. The defaults suit 128 to 512 pixel knee slices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseMapSettings {
    /// Tile side in pixels (even): each tile's estimate rests on `(tile / 2)^2` blocks.
    pub tile: usize,
    /// Which way the phase encoding runs in the image, where known.
    pub phase_encoding: PhaseEncoding,
    /// How many times longer than wide a tile is along the readout when the phase
    /// encoding is known (its area kept): 1 keeps square tiles.
    pub elongation: usize,
    /// Fewer usable blocks than this leave a tile to its neighbours.
    pub min_blocks: usize,
    /// Width (standard deviation) of the smoothing across tiles, in tiles.
    pub smoothing: f32,
    /// The magnitude's degrees of freedom in coils (1 for Rician; L for root-sum-of-squares
    /// of L prewhitened channels): sets the air floor and the air's second moment.
    pub coils: u32,
    /// Parallel imaging's acceleration along the phase encoding, where known (1: none, or
    /// not known). With the phase encoding known, the map is read between the fold lines
    /// `k N / R` where it jumps there (`folds`): only for images of the whole unfolded field
    /// of view, since cropping a phase oversampling moves the lines.
    pub acceleration: u32,
}

impl Default for NoiseMapSettings {
    fn default() -> Self {
        NoiseMapSettings {
            tile: 32,
            phase_encoding: PhaseEncoding::Unknown,
            elongation: 2,
            min_blocks: 32,
            smoothing: 1.0,
            coils: 1,
            acceleration: 1,
        }
    }
}

/// Which way the phase encoding runs across the image, as the acquisition states it
/// (DICOM's In-plane Phase Encoding Direction, `ROW` left-right and `COL` up-down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseEncoding {
    /// Not stated: square tiles.
    #[default]
    Unknown,
    /// Along the rows: the folds are vertical lines, the map changes from column to column.
    LeftRight,
    /// Along the columns: the folds are horizontal lines.
    UpDown,
}

impl PhaseEncoding {
    pub const ALL: [PhaseEncoding; 3] = [
        PhaseEncoding::Unknown,
        PhaseEncoding::LeftRight,
        PhaseEncoding::UpDown,
    ];

    /// Parses the names the CLI, configs and manifests use.
    pub fn parse(name: &str) -> Result<Self> {
        crate::error::by_name("phase encoding", name, &Self::ALL, Self::name)
    }

    pub fn name(self) -> &'static str {
        match self {
            PhaseEncoding::Unknown => "unknown",
            PhaseEncoding::LeftRight => "left-right",
            PhaseEncoding::UpDown => "up-down",
        }
    }
}

/// What images state of their acquisition that a noise map follows in place of its
/// settings, each `None` where they state nothing: the phase-encoding direction (DICOM's
/// In-plane Phase Encoding Direction) and parallel imaging's in-plane acceleration (DICOM's
/// Parallel Reduction Factor In-plane, MRD's `accelerationFactor`). A scanner knows both for
/// every series, where a configured value holds only for the protocol it was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stated {
    pub phase_encoding: Option<PhaseEncoding>,
    pub acceleration: Option<u32>,
}

/// The largest in-plane acceleration taken as stated: past it no strip between fold lines
/// is wide enough to read (`folds`), and a larger factor is a malformed header.
const MAX_STATED_ACCELERATION: u32 = 16;

impl Stated {
    /// Stated by nothing: the configured settings hold.
    pub const NOTHING: Stated = Stated {
        phase_encoding: None,
        acceleration: None,
    };

    /// The acceleration an acquisition's header states as `factor` (DICOM's Parallel
    /// Reduction Factor In-plane, MRD's `kspace_encoding_step_1`): the factor where it is a
    /// whole number up to 16; 1 where it is another factor over 1 (a fractional one, whose
    /// folds do not fall at whole fractions of the field of view: the map is read whole);
    /// `None` where it is no factor at all (under 1, not finite), so the configured one holds.
    pub fn acceleration_factor(factor: f64) -> Option<u32> {
        if !(factor.is_finite() && factor >= 1.0) {
            return None;
        }
        let whole = factor.round();
        let is_whole = (factor - whole).abs() < 0.01 && whole <= f64::from(MAX_STATED_ACCELERATION);
        Some(if is_whole { whole as u32 } else { 1 })
    }

    /// The same, its acceleration only where `counts`: a site whose images crop the phase
    /// oversampling after unfolding has fold lines where no stated factor puts them.
    pub fn acceleration_counting(self, counts: bool) -> Stated {
        Stated {
            acceleration: self.acceleration.filter(|_| counts),
            ..self
        }
    }

    /// What images state together: what all state alike, nothing where none states
    /// anything, and where they disagree (or some are silent) what no one value needs:
    /// an unknown direction (square tiles) and no acceleration (the map read whole).
    pub fn by_all(each: &[Stated]) -> Stated {
        Stated {
            phase_encoding: agreed(each, |s| s.phase_encoding, PhaseEncoding::Unknown),
            acceleration: agreed(each, |s| s.acceleration, 1),
        }
    }
}

/// What every one of `each` states of one thing (`of`): theirs where all state the same
/// (`None` where none states it: the configured value holds), else `disagreement`, which
/// needs no one value to hold for all.
fn agreed<T: Copy + PartialEq>(
    each: &[Stated],
    of: impl Fn(&Stated) -> Option<T>,
    disagreement: T,
) -> Option<T> {
    let first = of(each.first()?);
    if each.iter().all(|s| of(s) == first) {
        first
    } else {
        Some(disagreement)
    }
}

/// Where what images state sets configured settings aside: what a user should be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAside {
    /// The stated direction and the configured one.
    pub phase_encoding: Option<(PhaseEncoding, PhaseEncoding)>,
    /// The stated acceleration and the configured one.
    pub acceleration: Option<(u32, u32)>,
}

impl NoiseMapSettings {
    /// The same settings with what the images state, where they state it.
    pub fn as_stated(&self, stated: Stated) -> Self {
        NoiseMapSettings {
            phase_encoding: stated.phase_encoding.unwrap_or(self.phase_encoding),
            acceleration: stated.acceleration.unwrap_or(self.acceleration),
            ..*self
        }
    }

    /// What the images state where it sets aside a value configured here (a direction
    /// other than unknown, an acceleration other than 1).
    pub fn set_aside_by(&self, stated: Stated) -> SetAside {
        SetAside {
            phase_encoding: stated
                .phase_encoding
                .filter(|s| {
                    self.phase_encoding != PhaseEncoding::Unknown && *s != self.phase_encoding
                })
                .map(|s| (s, self.phase_encoding)),
            acceleration: stated
                .acceleration
                .filter(|s| self.acceleration != 1 && *s != self.acceleration)
                .map(|s| (s, self.acceleration)),
        }
    }

    /// The same settings on square tiles.
    pub fn square(&self) -> Self {
        NoiseMapSettings {
            phase_encoding: PhaseEncoding::Unknown,
            ..*self
        }
    }

    /// A tile's rows and columns in pixels: square, or elongated along the readout.
    pub fn tile_shape(&self) -> (usize, usize) {
        let (long, short) = (
            self.tile * self.elongation,
            self.tile / self.elongation.max(1),
        );
        match self.phase_encoding {
            PhaseEncoding::Unknown => (self.tile, self.tile),
            PhaseEncoding::LeftRight => (long, short),
            PhaseEncoding::UpDown => (short, long),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |what, reason: String| Err(Error::Invalid { what, reason });
        if self.tile < 4 || !self.tile.is_multiple_of(2) {
            return bad(
                "noise map tile",
                format!("{} is not an even size of 4 or more", self.tile),
            );
        }
        if self.elongation == 0 {
            return bad("noise map elongation", "0 is not a shape".into());
        }
        // Checked whatever the direction set here: a DICOM series states its own, which
        // the tiles then follow.
        let short = self.tile / self.elongation;
        if !self.tile.is_multiple_of(self.elongation) || short < 4 || !short.is_multiple_of(2) {
            return bad(
                "noise map elongation",
                format!(
                    "{} makes tiles of {} pixels {}; their short side must be an even size of 4 \
                     or more",
                    self.elongation,
                    self.tile,
                    self.tile as f32 / self.elongation as f32
                ),
            );
        }
        if self.min_blocks == 0 {
            return bad("noise map min_blocks", "0 would trust an empty tile".into());
        }
        if !(self.smoothing >= 0.0 && self.smoothing.is_finite()) {
            return bad(
                "noise map smoothing",
                format!("{} is not a finite width >= 0", self.smoothing),
            );
        }
        if self.coils == 0 {
            return bad("noise map coils", "0 coils".into());
        }
        if self.acceleration == 0 {
            return bad(
                "noise map acceleration",
                "0 is not an acceleration (1: none)".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_narrowed_across_the_phase_encoding_their_area_kept() {
        let mut s = NoiseMapSettings::default();
        assert_eq!(s.tile_shape(), (32, 32));
        s.phase_encoding = PhaseEncoding::LeftRight;
        assert_eq!(s.tile_shape(), (64, 16));
        s.phase_encoding = PhaseEncoding::UpDown;
        assert_eq!(s.tile_shape(), (16, 64));
        assert_eq!(s.square().tile_shape(), (32, 32));
        s.elongation = 1;
        assert_eq!(s.tile_shape(), (32, 32));
    }

    #[test]
    fn a_shape_without_an_even_short_side_is_refused_naming_the_elongation() {
        for (tile, elongation) in [(32, 0), (32, 3), (8, 4), (20, 4)] {
            let s = NoiseMapSettings {
                tile,
                elongation,
                phase_encoding: PhaseEncoding::UpDown,
                ..NoiseMapSettings::default()
            };
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains("elongation"), "{tile} / {elongation}: {err}");
        }
        // Refused on square tiles too: images may state a direction of their own.
        let s = NoiseMapSettings {
            tile: 20,
            elongation: 3,
            ..NoiseMapSettings::default()
        };
        assert!(s.validate().is_err());
        let s = NoiseMapSettings {
            tile: 20,
            elongation: 1,
            ..NoiseMapSettings::default()
        };
        assert!(s.validate().is_ok());
    }

    #[test]
    fn a_direction_stated_by_all_holds_and_a_disagreement_leaves_it_unknown() {
        use PhaseEncoding::{LeftRight, Unknown, UpDown};
        let direction = |p| Stated {
            phase_encoding: p,
            acceleration: None,
        };
        let by_all = |each: &[Option<PhaseEncoding>]| {
            let each: Vec<_> = each.iter().map(|p| direction(*p)).collect();
            Stated::by_all(&each).phase_encoding
        };
        assert_eq!(by_all(&[]), None);
        assert_eq!(by_all(&[None, None]), None);
        let all = [Some(UpDown); 3];
        assert_eq!(by_all(&all), Some(UpDown));
        for mixed in [[Some(UpDown), Some(LeftRight)], [Some(LeftRight), None]] {
            assert_eq!(by_all(&mixed), Some(Unknown), "{mixed:?}");
        }
        let configured = NoiseMapSettings {
            phase_encoding: LeftRight,
            ..NoiseMapSettings::default()
        };
        assert_eq!(
            configured.as_stated(Stated::NOTHING).phase_encoding,
            LeftRight
        );
        assert_eq!(
            configured.as_stated(direction(Some(UpDown))).phase_encoding,
            UpDown
        );
        assert_eq!(
            configured.as_stated(direction(Some(Unknown))).tile_shape(),
            (32, 32)
        );
        let aside = |s: &NoiseMapSettings, p| s.set_aside_by(direction(p)).phase_encoding;
        assert_eq!(aside(&configured, Some(UpDown)), Some((UpDown, LeftRight)));
        assert_eq!(aside(&configured, Some(LeftRight)), None);
        assert_eq!(aside(&configured, None), None);
        assert_eq!(aside(&NoiseMapSettings::default(), Some(UpDown)), None);
    }

    #[test]
    fn an_acceleration_stated_by_all_holds_and_a_disagreement_reads_the_map_whole() {
        let at = |r| Stated {
            phase_encoding: None,
            acceleration: r,
        };
        assert_eq!(Stated::by_all(&[]), Stated::NOTHING);
        assert_eq!(Stated::by_all(&[at(None), at(None)]).acceleration, None);
        assert_eq!(Stated::by_all(&[at(Some(3)); 4]).acceleration, Some(3));
        assert_eq!(at(Some(3)).acceleration_counting(false), Stated::NOTHING);
        assert_eq!(at(Some(3)).acceleration_counting(true), at(Some(3)));
        for mixed in [[at(Some(2)), at(Some(3))], [at(Some(3)), at(None)]] {
            assert_eq!(Stated::by_all(&mixed).acceleration, Some(1), "{mixed:?}");
        }
        let configured = NoiseMapSettings {
            acceleration: 2,
            ..NoiseMapSettings::default()
        };
        assert_eq!(configured.as_stated(Stated::NOTHING).acceleration, 2);
        assert_eq!(configured.as_stated(at(Some(3))).acceleration, 3);
        assert_eq!(
            configured.set_aside_by(at(Some(3))).acceleration,
            Some((3, 2))
        );
        assert_eq!(configured.set_aside_by(at(Some(2))), SetAside::default());
        // Configured as none (or not known): a stated acceleration sets nothing aside.
        let none = NoiseMapSettings::default().set_aside_by(at(Some(3)));
        assert_eq!(none, SetAside::default());
    }

    #[test]
    fn phase_encoding_names_round_trip_and_a_typo_is_named() {
        for p in PhaseEncoding::ALL {
            assert_eq!(PhaseEncoding::parse(p.name()).unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
        }
        let err = PhaseEncoding::parse("leftright").unwrap_err().to_string();
        assert!(
            err.contains("phase encoding") && err.contains("leftright"),
            "{err}"
        );
    }
}
