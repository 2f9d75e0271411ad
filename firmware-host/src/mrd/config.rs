//! `host.toml`: where to listen, which models serve which config name, and the limits that
//! keep one bad client from hurting the others. Strict: an unknown key is an error naming it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossdenoise_runtime::ProviderSettings;

use crate::contrast::ContrastRules;
pub use crate::contrast::Strength;
pub use crate::dicom::config::{Destination, DicomConfig, DicomModels, OnConflict, OtherSeries};
use crossdenoise_image::noise_map::PhaseEncoding;
use serde::Deserialize;

/// What to do with messages the daemon does not process (acquisitions, waveforms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Forward {
    /// Send them back unchanged, in order.
    #[default]
    Pass,
    /// Drop them (logged and counted).
    Drop,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    pub listen: SocketAddr,
    /// Serve on a non-loopback address; off unless asked for (the box sits on the
    /// scanner's network).
    pub allow_remote: bool,
    /// Loopback address of the read-only Prometheus `/metrics` endpoint; none if unset.
    pub metrics_listen: Option<SocketAddr>,
    /// Profile used when a client names none or an unknown one.
    pub default_profile: String,
    pub profiles: BTreeMap<String, Profile>,
    /// `[strength]`: how much of the denoised image each contrast's models serve (the rest
    /// the acquired image), for the MRD profiles and the DICOM node alike.
    pub strength: Strength,
    pub execution_providers: ProviderSettings,
    /// Largest single message accepted, in MiB.
    pub max_message_mib: usize,
    /// A client silent this long (no message, no close) is disconnected.
    pub idle_timeout_s: f64,
    /// A connection that has not sent its MRD header this long after connecting is closed:
    /// an idle or stray connection cannot hold a slot for `idle_timeout_s`.
    pub handshake_timeout_s: f64,
    /// A client that takes nothing of an answer for this long is given up on (its answers
    /// counted undeliverable); also how long a closing connection waits for the client to
    /// read what it was sent and close its side.
    pub write_timeout_s: f64,
    /// How long SIGTERM waits for open connections to be answered; then what is left is
    /// counted undeliverable and the daemon exits.
    pub shutdown_grace_s: f64,
    /// An image not denoised within this time goes back unchanged.
    pub image_timeout_s: f64,
    /// Largest image denoised, in pixels (x * y * z * channels); a larger one goes back
    /// unchanged, so one huge image can neither starve the others nor take the memory.
    pub max_image_pixels: u64,
    /// Largest plane run through a model at once; larger slices run in overlapping tiles,
    /// which bounds the inference memory (see `DenoiserOptions::tile_pixels`).
    pub tile_pixels: usize,
    /// Average each model over the eight orientations of a slice (and its guide): +0.2 dB
    /// at eight times the inference (`DenoiserOptions::average_orientations`).
    pub average_orientations: bool,
    /// How long an image for a guided model waits on its connection for the same slice of
    /// its partner contrast (its guide); one left without a partner is denoised by its
    /// profile's `alone` model for its contrast, or goes back unchanged when there is none.
    /// Below `image_timeout_s`, which bounds the wait and the denoising together.
    pub pair_wait_s: f64,
    /// How long an image that found no partner is kept (its noisy planes, under its study:
    /// the MRD header's frame of reference, else patient and study) for a partner series
    /// that comes later, on this connection or another: each image of that series is then
    /// denoised with the kept slice as its guide. 0: partners meet within a connection only.
    pub pair_window_s: f64,
    /// Memory for the images kept for `pair_window_s`, in MiB; beyond it the oldest are let
    /// go (counted), and their partners are denoised alone.
    pub pair_keep_mib: usize,
    /// Most slices denoised in one inference. 1 suits a CPU (ONNX Runtime's CPU kernels run
    /// a batch of 4 slower per slice than 4 single slices, see BENCHMARKS.md); a GPU gains
    /// from more.
    pub batch_size: usize,
    /// How long the worker waits for more slices to fill a batch.
    pub batch_wait_ms: u64,
    /// Images queued for the worker across all connections; senders wait beyond it.
    pub queue_depth: usize,
    /// Images read ahead of their answers on one connection.
    pub in_flight_per_connection: usize,
    /// For a model served with a noise map (one trained on a coil array): most images of a
    /// connection's series each image's map is pooled with, itself included. The images of
    /// one acquisition share their g-factor map, and pooled it is several times more
    /// precise; 1 maps each image alone. A 256 x 256 slice held costs about 0.6 MB, twice
    /// with its guide.
    pub noise_pool_slices: usize,
    /// For a model served with a noise map: which way the phase encoding runs in the
    /// images the site sends (`left-right`, `up-down`, or `unknown`: square tiles).
    /// Parallel imaging folds along it, and a map whose tiles are narrowed across the folds
    /// follows the g-factor's fold lines (docs/scanner-noise.md). A DICOM series' own
    /// In-plane Phase Encoding Direction takes its place; MRD images state none.
    pub phase_encoding: PhaseEncoding,
    /// For a model served with a noise map: the protocol's parallel-imaging acceleration
    /// along the phase encoding (1: none or not known). With `phase_encoding` known, a map
    /// that jumps at the fold lines `k N / R` is read between them; only for images of the
    /// whole unfolded field of view (a cropped phase oversampling moves the lines).
    pub acceleration: u32,
    /// Whether the acceleration a DICOM series or an MRD header states sets `acceleration`
    /// aside (`DenoiserOptions::stated_acceleration`): off where the images crop the phase
    /// oversampling after unfolding.
    pub stated_acceleration: bool,
    pub max_connections: usize,
    /// Open connections from one peer address; beyond it (or `max_connections`) a client
    /// gets an MRD error text and close.
    pub max_connections_per_peer: usize,
    /// Added to `image_series_index` for the denoised series.
    pub series_offset: u16,
    /// Also send the original image after its denoised version.
    pub send_original: bool,
    pub acquisitions: Forward,
    pub waveforms: Forward,
    /// Seconds between stats lines in the log (0: none).
    pub stats_interval_s: f64,
    /// Which contrast an image shows, by the words of its `SequenceDescription` (else
    /// `ProtocolName`): an image recognised as one contrast is never answered by a model
    /// that denoises the other (it goes back unchanged, logged); the cross path, whose
    /// answers say "synthesized", is the exception.
    pub contrasts: ContrastRules,
    /// The DICOM node (C-ECHO / C-STORE SCP into a spool); off unless the table is given.
    pub dicom: Option<DicomConfig>,
}

/// A named set of models: `model` by default, the first matching rule's model otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub model: PathBuf,
    #[serde(default)]
    pub rules: Vec<ModelRule>,
    /// Single-contrast models by contrast (`pd`, `pdfs`): an image for a guided model whose
    /// partner does not come is denoised by the one of its own contrast (none: it goes back
    /// unchanged). Each must be a single-contrast denoiser of its key's contrast, checked
    /// when the daemon starts.
    #[serde(default)]
    pub alone: BTreeMap<String, PathBuf>,
}

impl Profile {
    /// A profile serving `model` for every image.
    pub fn of(model: &Path) -> Self {
        Profile {
            model: model.into(),
            rules: Vec::new(),
            alone: BTreeMap::new(),
        }
    }
}

/// Picks a model by contrast: the header's `contrast` index and / or an attribute
/// (e.g. `SequenceDescription`) containing a text. Every condition given must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRule {
    pub model: PathBuf,
    pub contrast: Option<u16>,
    pub attribute: Option<String>,
    pub contains: Option<String>,
}

pub const DEFAULT_PROFILE: &str = "crossdenoise";

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            listen: "127.0.0.1:9002".parse().expect("valid address"),
            allow_remote: false,
            metrics_listen: None,
            default_profile: DEFAULT_PROFILE.into(),
            profiles: BTreeMap::new(),
            strength: Strength::default(),
            execution_providers: ProviderSettings::default(),
            max_message_mib: 64,
            idle_timeout_s: 300.0,
            handshake_timeout_s: 10.0,
            write_timeout_s: 30.0,
            shutdown_grace_s: 30.0,
            image_timeout_s: 30.0,
            max_image_pixels: 1024 * 1024,
            tile_pixels: 512 * 512,
            average_orientations: false,
            pair_wait_s: 10.0,
            pair_window_s: 600.0,
            pair_keep_mib: 256,
            batch_size: 1,
            batch_wait_ms: 0,
            queue_depth: 64,
            in_flight_per_connection: 16,
            noise_pool_slices: 16,
            phase_encoding: PhaseEncoding::Unknown,
            acceleration: 1,
            stated_acceleration: true,
            max_connections: 64,
            max_connections_per_peer: 16,
            series_offset: 100,
            send_original: false,
            acquisitions: Forward::Pass,
            waveforms: Forward::Pass,
            stats_interval_s: 60.0,
            contrasts: ContrastRules::default(),
            dicom: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

impl HostConfig {
    /// The defaults, with the default profile serving `model`: what `serve --model` and
    /// the tests start from.
    pub fn serving(model: &Path) -> Self {
        let mut config = HostConfig::default();
        config
            .profiles
            .insert(DEFAULT_PROFILE.into(), Profile::of(model));
        config
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config = Self::read(path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Reads `path` without the range checks: the command line's flags go over it first
    /// (`--model`, `--listen`, `--allow-remote`), then [`HostConfig::validate`] checks the
    /// merged config once.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut config: HostConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        // Model paths are relative to the config file, as a person writing it expects.
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(dicom) = &mut config.dicom {
            dicom.strength = config.strength;
            dicom.spool = base.join(&dicom.spool);
            let m = &mut dicom.models;
            for model in [&mut m.pd, &mut m.pdfs, &mut m.pd_alone, &mut m.pdfs_alone]
                .into_iter()
                .flatten()
            {
                *model = base.join(&*model);
            }
        }
        for profile in config.profiles.values_mut() {
            profile.model = base.join(&profile.model);
            for rule in &mut profile.rules {
                rule.model = base.join(&rule.model);
            }
            for model in profile.alone.values_mut() {
                *model = base.join(&*model);
            }
        }
        Ok(config)
    }

    /// Checks ranges and cross-references; `path` names the file in errors.
    // Long: one check per key in host.toml's order, so that the list reads against
    // docs/daemon.md in one place.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                path: path.into(),
                key: key.into(),
                reason: reason.into(),
            })
        };
        if !self.allow_remote && !self.listen.ip().is_loopback() {
            return bad(
                "listen",
                "not a loopback address: set allow_remote = true (or --allow-remote) to serve on the network",
            );
        }
        if let Some(m) = self.metrics_listen
            && !m.ip().is_loopback()
        {
            return bad(
                "metrics_listen",
                "the metrics endpoint serves loopback only",
            );
        }
        if self.profiles.is_empty() && self.dicom.is_none() {
            return bad(
                "profiles",
                "nothing to serve: no model profile (give --model or a [profiles.NAME] table) and no [dicom] table",
            );
        }
        // No profile with a [dicom] table: the DICOM node alone, the MRD listener off.
        if !self.profiles.is_empty() && !self.profiles.contains_key(&self.default_profile) {
            let names: Vec<_> = self.profiles.keys().map(String::as_str).collect();
            return bad(
                "default_profile",
                &format!(
                    "'{}' is not a profile (have {})",
                    self.default_profile,
                    names.join(", ")
                ),
            );
        }
        for (name, profile) in &self.profiles {
            for (i, rule) in profile.rules.iter().enumerate() {
                if rule.contrast.is_none() && rule.attribute.is_none() {
                    return bad(
                        &format!("profiles.{name}.rules[{i}]"),
                        "a rule needs `contrast` and / or `attribute` + `contains`",
                    );
                }
                if rule.attribute.is_some() != rule.contains.is_some() {
                    return bad(
                        &format!("profiles.{name}.rules[{i}]"),
                        "`attribute` and `contains` go together",
                    );
                }
            }
        }
        for (key, value, min) in [
            ("max_message_mib", self.max_message_mib, 1),
            ("batch_size", self.batch_size, 1),
            ("queue_depth", self.queue_depth, 1),
            ("in_flight_per_connection", self.in_flight_per_connection, 1),
            ("noise_pool_slices", self.noise_pool_slices, 1),
            ("acceleration", self.acceleration as usize, 1),
            ("max_connections", self.max_connections, 1),
            ("max_connections_per_peer", self.max_connections_per_peer, 1),
            ("max_image_pixels", self.max_image_pixels as usize, 1),
            ("pair_keep_mib", self.pair_keep_mib, 1),
            ("tile_pixels", self.tile_pixels, 64 * 64),
        ] {
            if value < min {
                return bad(key, &format!("must be at least {min}"));
            }
        }
        for (key, value) in [
            ("idle_timeout_s", self.idle_timeout_s),
            ("image_timeout_s", self.image_timeout_s),
            ("handshake_timeout_s", self.handshake_timeout_s),
            ("write_timeout_s", self.write_timeout_s),
            ("shutdown_grace_s", self.shutdown_grace_s),
        ] {
            if !(value > 0.0 && value.is_finite()) {
                return bad(key, "must be a positive number of seconds");
            }
        }
        if !(self.pair_wait_s > 0.0 && self.pair_wait_s < self.image_timeout_s) {
            return bad(
                "pair_wait_s",
                "must be a positive number of seconds below image_timeout_s",
            );
        }
        if !(self.pair_window_s >= 0.0 && self.pair_window_s.is_finite()) {
            return bad(
                "pair_window_s",
                "must be 0 (partners meet within a connection only) or a positive number of seconds",
            );
        }
        if !(self.stats_interval_s >= 0.0 && self.stats_interval_s.is_finite()) {
            return bad("stats_interval_s", "must be 0 (off) or a positive number");
        }
        if let Some(key) = self.contrasts.problem() {
            return bad("contrasts", &format!("`{key}` needs at least one word"));
        }
        for (key, v) in [
            ("strength.pd", self.strength.pd),
            ("strength.pdfs", self.strength.pdfs),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(
                    key,
                    "must be between 0 (the acquired image) and 1 (denoised)",
                );
            }
        }
        if let Some((key, reason)) = self
            .dicom
            .as_ref()
            .and_then(|d| d.problem(self.allow_remote))
        {
            return bad(key, &reason);
        }
        self.execution_providers
            .validate()
            .or_else(|e| bad("execution_providers", &e.to_string()))
    }

    /// How every model the host opens runs: the configured execution providers, and slices
    /// beyond `tile_pixels` in tiles. The MRD engines and the DICOM node's models share it.
    pub fn denoiser_options(&self) -> crossdenoise_runtime::DenoiserOptions {
        crossdenoise_runtime::DenoiserOptions {
            providers: self.execution_providers.clone(),
            tile_pixels: self.tile_pixels,
            average_orientations: self.average_orientations,
            phase_encoding: self.phase_encoding,
            acceleration: self.acceleration,
            stated_acceleration: self.stated_acceleration,
            ..Default::default()
        }
    }

    pub fn max_message_bytes(&self) -> usize {
        self.max_message_mib.saturating_mul(1 << 20)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.idle_timeout_s)
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.handshake_timeout_s)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.write_timeout_s)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_grace_s)
    }

    pub fn image_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.image_timeout_s)
    }

    pub fn pair_wait(&self) -> Duration {
        Duration::from_secs_f64(self.pair_wait_s)
    }

    pub fn pair_window(&self) -> Duration {
        Duration::from_secs_f64(self.pair_window_s)
    }

    pub fn pair_keep_bytes(&self) -> usize {
        self.pair_keep_mib.saturating_mul(1 << 20)
    }

    /// Every distinct model file, in a stable order (the worker's model indices).
    pub fn model_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = Vec::new();
        for p in self.profiles.values() {
            let rules = p.rules.iter().map(|r| &r.model);
            for m in std::iter::once(&p.model)
                .chain(rules)
                .chain(p.alone.values())
            {
                if !paths.contains(m) {
                    paths.push(m.clone());
                }
            }
        }
        paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<HostConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(&path, text).unwrap();
        HostConfig::load(&path)
    }

    #[test]
    fn a_full_config_loads_with_paths_relative_to_it() {
        let c = load(
            r#"
            listen = "127.0.0.1:9010"
            default_profile = "knee"
            batch_size = 8
            phase_encoding = "left-right"
            acceleration = 3
            stated_acceleration = false
            [execution_providers]
            order = ["cuda", "cpu"]
            [profiles.knee]
            model = "pd.onnx"
            [[profiles.knee.rules]]
            attribute = "SequenceDescription"
            contains = "FS"
            model = "pdfs.onnx"
            [profiles.knee.alone]
            pd = "pd_single.onnx"
            pdfs = "pdfs_single.onnx"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9010);
        assert_eq!(c.batch_size, 8);
        assert_eq!(c.phase_encoding, PhaseEncoding::LeftRight);
        assert_eq!(
            c.denoiser_options().phase_encoding,
            PhaseEncoding::LeftRight
        );
        assert_eq!(c.denoiser_options().acceleration, 3);
        assert!(!c.denoiser_options().stated_acceleration);
        assert!(HostConfig::serving(Path::new("m.onnx")).stated_acceleration);
        assert!(c.profiles["knee"].model.ends_with("pd.onnx"));
        assert!(c.profiles["knee"].model.is_absolute());
        assert!(c.profiles["knee"].alone["pdfs"].is_absolute());
        assert_eq!(c.model_paths().len(), 4);
    }

    #[test]
    fn a_phase_encoding_typo_is_named() {
        let err = load("phase_encoding = \"left_right\"\n[profiles.knee]\nmodel = \"m\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("phase_encoding") && err.contains("left-right"),
            "{err}"
        );
    }

    #[test]
    fn the_documented_example_loads() {
        let readme = include_str!("../../../docs/daemon.md");
        let start = readme
            .find("```toml\nlisten")
            .expect("docs/daemon.md's host.toml")
            + 8;
        let end = start + readme[start..].find("```").unwrap();
        let c = load(&readme[start..end]).unwrap();
        assert_eq!(c.default_profile, "knee");
        assert_eq!(c.profiles["knee"].rules.len(), 1);
        assert_eq!(c.execution_providers.order.len(), 3);
    }

    #[test]
    fn the_shipped_deploy_config_loads() {
        let c = load(include_str!("../../../deploy/host.toml")).unwrap();
        assert_eq!(c.batch_size, 4);
        assert_eq!(c.metrics_listen.unwrap().port(), 9102);
        assert!(c.profiles["crossdenoise"].model.ends_with("pd_guided.onnx"));
        assert_eq!(c.pair_wait_s, 10.0);
        assert_eq!((c.pair_window_s, c.pair_keep_mib), (600.0, 256));
        assert_eq!(c.profiles["crossdenoise"].alone.len(), 2);
    }

    #[test]
    fn the_dicom_table_loads_and_its_mistakes_are_named() {
        let base = "[profiles.crossdenoise]\nmodel = \"m.onnx\"\n[dicom]\n";
        let c = load(&format!(
            "{base}ae_title = \"KNEE NODE\"\nallowed_calling_aes = [\"MR1\"]\nspool = \"s\"\n"
        ))
        .unwrap();
        let d = c.dicom.unwrap();
        assert_eq!((d.ae_title.as_str(), d.max_associations), ("KNEE NODE", 8));
        assert!(
            d.spool.is_absolute(),
            "relative to host.toml: {}",
            d.spool.display()
        );
        assert!(
            load("[profiles.crossdenoise]\nmodel = \"m\"\n")
                .unwrap()
                .dicom
                .is_none()
        );
        for (line, key) in [
            ("aetitle = \"X\"", "aetitle"),
            ("ae_title = \"SEVENTEEN_LETTERS\"", "dicom.ae_title"),
            (
                "allowed_calling_aes = [\"A\\\\B\"]",
                "dicom.allowed_calling_aes",
            ),
            ("listen = \"0.0.0.0:104\"", "dicom.listen"),
            ("max_pdu_bytes = 100", "dicom.max_pdu_bytes"),
            ("max_associations = 0", "dicom.max_associations"),
            ("timeout_s = 0", "dicom.timeout_s"),
            (
                "destination = { ae_title = \"PACS\", address = \"pacs\" }",
                "dicom.destination.address",
            ),
            ("destination = { ae_title = \"PACS\" }", "address"),
            ("models = { pd = \"pd.onnx\" }", "dicom.models"),
            ("pair_wait_s = -1", "dicom.pair_wait_s"),
            ("contrasts = { pd = [] }", "dicom.contrasts"),
            (
                "bright_share = { pdfs_max = 1.5 }",
                "dicom.bright_share.pdfs_max",
            ),
            ("bright_share = { pd = 0.2 }", "pd"),
        ] {
            let e = load(&format!("{base}{line}\n")).unwrap_err().to_string();
            assert!(e.contains(key), "{line}: {e}");
        }
        // allow_remote lets the node onto the network, as it does the MRD listener.
        let remote = format!(
            "allow_remote = true\nlisten = \"0.0.0.0:9002\"\n{base}listen = \"0.0.0.0:104\"\n"
        );
        assert!(load(&remote).is_ok());
    }

    #[test]
    fn errors_name_the_key() {
        let typo = load("[profiles.x]\nmodel = \"m.onnx\"\nbatchsize = 3\n").unwrap_err();
        assert!(typo.to_string().contains("batchsize"), "{typo}");
        let top = load("default_profile = \"x\"\nbatchsize = 3\n[profiles.x]\nmodel = \"m\"\n")
            .unwrap_err();
        assert!(
            top.to_string().contains("unknown field `batchsize`"),
            "{top}"
        );
        let remote = load("listen = \"0.0.0.0:9002\"\n[profiles.crossdenoise]\nmodel = \"m\"\n")
            .unwrap_err();
        assert!(
            remote.to_string().contains("listen: not a loopback"),
            "{remote}"
        );
        let default = load("[profiles.knee]\nmodel = \"m\"\n").unwrap_err();
        assert!(
            default
                .to_string()
                .contains("default_profile: 'crossdenoise' is not a profile"),
            "{default}"
        );
        let zero = load("batch_size = 0\n[profiles.crossdenoise]\nmodel = \"m\"\n").unwrap_err();
        assert!(
            zero.to_string().contains("batch_size: must be at least 1"),
            "{zero}"
        );
        for (line, message) in [
            ("pair_window_s = -1", "pair_window_s: must be 0"),
            ("pair_window_s = inf", "pair_window_s: must be 0"),
            ("pair_keep_mib = 0", "pair_keep_mib: must be at least 1"),
            (
                "noise_pool_slices = 0",
                "noise_pool_slices: must be at least 1",
            ),
            ("acceleration = 0", "acceleration: must be at least 1"),
        ] {
            let e = load(&format!("{line}\n[profiles.crossdenoise]\nmodel = \"m\"\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(message), "{line}: {e}");
        }
        let alone = load("[profiles.crossdenoise]\nmodel = \"m\"\nalone = [\"pd.onnx\"]\n")
            .unwrap_err()
            .to_string();
        assert!(alone.contains("alone"), "{alone}");
    }
}
