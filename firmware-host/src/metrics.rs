//! Counters declared once: a counter's field, its Prometheus kind, name and help are one line
//! of a [`counters!`] list, and [`write`] is the one place the Prometheus text exposition
//! format is written, for the daemon's metrics and the DICOM node's alike.

use std::fmt::Write as _;

/// A Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Appends one metric, `prefix` + its name, with its help and type lines.
pub fn write(out: &mut String, prefix: &str, (kind, name, help): (Kind, &str, &str), value: u64) {
    let _ = write!(
        out,
        "# HELP {prefix}{name} {help}\n# TYPE {prefix}{name} {}\n{prefix}{name} {value}\n",
        kind.name()
    );
}

/// A struct of atomic counters, each declared with its Prometheus kind, name and help:
/// `field: Counter "name_total" "Help.",`. The struct gets `metrics()`, every counter in
/// declaration order with what [`write`] takes.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $kind:ident $metric:literal $help:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: std::sync::atomic::AtomicU64,
            )*
        }

        impl $name {
            /// Every counter with its Prometheus kind, name and help.
            pub fn metrics(
                &self,
            ) -> Vec<(
                $crate::metrics::Kind,
                &'static str,
                &'static str,
                &std::sync::atomic::AtomicU64,
            )> {
                vec![$(($crate::metrics::Kind::$kind, $metric, $help, &self.$field),)*]
            }
        }
    };
}

pub(crate) use counters;

#[cfg(test)]
mod tests {
    use super::*;

    counters! {
        /// Two counters for the test.
        pub struct Two {
            /// The first.
            first: Counter "first_total" "The first.",
            level: Gauge "level" "A level.",
        }
    }

    #[test]
    fn a_list_gives_fields_and_their_exposition() {
        let t = Two::default();
        t.first.fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        let mut out = String::new();
        for (kind, name, help, c) in t.metrics() {
            write(
                &mut out,
                "x_",
                (kind, name, help),
                c.load(std::sync::atomic::Ordering::Relaxed),
            );
        }
        assert_eq!(
            out,
            "# HELP x_first_total The first.\n# TYPE x_first_total counter\nx_first_total 3\n\
             # HELP x_level A level.\n# TYPE x_level gauge\nx_level 0\n"
        );
    }
}
