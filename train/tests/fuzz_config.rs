//! The training config parser under mutated input: a config file with characters changed,
//! cut short or extended, and `--set` overrides of random keys and values, is loaded or
//! refused with an error naming the file; never a panic, and no allocation out of
//! proportion to the file. `PROPTEST_CASES` sets the cases.

use crossdenoise_test_support::fuzz::{self, Recording};

#[global_allocator]
static ALLOCATOR: Recording = Recording;

use crossdenoise_train::config::Config;
use fuzz::{cases, largest_allocation, mutation};
use proptest::prelude::*;

const SEEDS: [&str; 3] = [
    include_str!("../../configs/guided.json"),
    include_str!("../../configs/config.json"),
    include_str!("../../configs/single.json"),
];

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn mutated_configs_load_or_name_the_file(pick in 0usize..3, m in mutation()) {
        let bytes = m.apply(SEEDS[pick].as_bytes());
        let dir = tempfile::tempdir().unwrap();
        // What a config may extend.
        std::fs::write(dir.path().join("guided.json"), SEEDS[0]).unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, &bytes).unwrap();
        let (loaded, largest) = largest_allocation(|| Config::load(&path));
        prop_assert!(largest <= 64 * bytes.len() + 65536, "{} bytes allocated at once", largest);
        if let Err(e) = loaded {
            prop_assert!(e.to_string().contains("c.json"), "{}", e);
        }
    }

    #[test]
    fn random_overrides_apply_or_name_the_key(
        key in prop::sample::select(vec![
            "name", "seed", "data.image_size", "data.train_pairs", "trainer.lr",
            "trainer.epochs", "trainer.batch_size", "model.depth", "model.kind",
            "trainer.noise.sigma_a", "no.such.key", "",
        ]),
        value in "[-a-z0-9.\"{}\\[\\],:e+]{0,12}",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, SEEDS[0]).unwrap();
        let config = Config::load(&path).unwrap();
        if let Err(e) = config.with_overrides(&[format!("{key}={value}")], &path) {
            prop_assert!(e.to_string().contains("c.json"), "{}", e);
        }
    }
}
