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
/// `field: Counter "name_total" "Help.",`, and the struct of their values at one moment
/// (`pub struct Counters / Values`). The counters get `now()`; the values get `metrics()`
/// (each with what [`write`] takes, in declaration order), `prometheus(prefix)` and `line()`
/// for the log: the field, the log line and the /metrics row come from the one list.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident / $now:ident {
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

        /// The counters' values at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $now {
            $(
                $(#[doc = $doc])*
                pub $field: u64,
            )*
        }

        impl $name {
            /// Every counter's value now.
            pub fn now(&self) -> $now {
                $now {
                    $($field: self.$field.load(std::sync::atomic::Ordering::Relaxed),)*
                }
            }
        }

        impl $now {
            /// Every value with its Prometheus kind, name and help.
            pub fn metrics(&self) -> Vec<($crate::metrics::Kind, &'static str, &'static str, u64)> {
                vec![$(($crate::metrics::Kind::$kind, $metric, $help, self.$field),)*]
            }

            /// The values in the Prometheus text format, each name after `prefix`.
            pub fn prometheus(&self, prefix: &str) -> String {
                let mut out = String::new();
                for (kind, name, help, value) in self.metrics() {
                    $crate::metrics::write(&mut out, prefix, (kind, name, help), value);
                }
                out
            }

            /// One line for the log: each counter by its field's words.
            pub fn line(&self) -> String {
                [$(format!("{} {}", stringify!($field).replace('_', " "), self.$field)),*]
                    .join(", ")
            }
        }
    };
}

pub(crate) use counters;

#[cfg(test)]
mod tests {
    counters! {
        /// Two counters for the test.
        pub struct Two / TwoNow {
            /// The first.
            first: Counter "first_total" "The first.",
            level: Gauge "level" "A level.",
        }
    }

    #[test]
    fn a_list_gives_fields_and_their_exposition() {
        let t = Two::default();
        t.first.fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        let now = t.now();
        assert_eq!(now, TwoNow { first: 3, level: 0 });
        assert_eq!(
            now.prometheus("x_"),
            "# HELP x_first_total The first.\n# TYPE x_first_total counter\nx_first_total 3\n\
             # HELP x_level A level.\n# TYPE x_level gauge\nx_level 0\n"
        );
        assert_eq!(now.line(), "first 3, level 0");
    }
}
