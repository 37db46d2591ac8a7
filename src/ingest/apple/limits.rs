//! Caps on what one export may make the importer hold or do, so a crafted file (a zip bomb, a
//! gigabyte attribute, millions of made-up source or type names) fails its import with a clear
//! error instead of taking the server's memory or time. Every set the parser fills from the
//! input is bounded here.

use std::io::{self, BufRead, Read};

/// The caps of one import. `serve` takes them from its configuration
/// (`WEARHOUSE_IMPORT_MAX_*`); the defaults fit the largest real exports with a wide margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes a zip's `export.xml` may inflate to.
    pub max_inflated_bytes: u64,
    /// Most bytes a zip may inflate to per byte of the upload (real exports: about 10-25).
    pub max_inflate_ratio: u64,
    /// Largest single XML event (one tag with its attributes, or one text node), in bytes.
    pub max_xml_event_bytes: u64,
    /// Most distinct sources (app × device) one export may name.
    pub max_sources: usize,
    /// Most distinct unknown record types (and unmapped workout types) one export may name.
    pub max_unknown_types: usize,
    /// Most blood-pressure readings held to pair top-level readings with their correlations.
    pub max_blood_pressure_readings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflated_bytes: 32 << 30,
            max_inflate_ratio: 100,
            max_xml_event_bytes: 1 << 20,
            max_sources: 10_000,
            max_unknown_types: 10_000,
            max_blood_pressure_readings: 1_000_000,
        }
    }
}

/// Deepest element nesting accepted (Apple's deepest is 4: HealthData/Workout/WorkoutRoute/…).
pub const MAX_DEPTH: u32 = 64;
/// Most metadata entries and events kept for one workout (real ones: a few dozen).
pub const MAX_WORKOUT_CHILDREN: usize = 10_000;
/// Most bytes of text (types, keys, values) kept for one workout's children.
pub const MAX_WORKOUT_TEXT_BYTES: usize = 4 << 20;
/// Most menstrual-flow records (each is held until the end, to fold cycles).
pub const MAX_MENSTRUAL_FLOWS: u64 = 1_000_000;
/// Most bytes of source and unknown type names held (each name may be one XML event long).
pub const MAX_NAME_BYTES: usize = 64 << 20;

/// A cap was reached; carried inside an `io::Error` from the readers below so the parser can
/// tell it from a read failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LimitExceeded(pub String);

impl LimitExceeded {
    pub fn io(message: String) -> io::Error {
        io::Error::other(LimitExceeded(message))
    }

    /// The cap behind an I/O error, if it is one.
    pub fn find(e: &io::Error) -> Option<&LimitExceeded> {
        e.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

/// Counts inflated bytes and stops past the absolute or the ratio cap.
pub struct InflateGuard<R> {
    pub inner: R,
    pub inflated: u64,
    pub cap: u64,
    pub what: String,
}

impl<R> InflateGuard<R> {
    pub fn new(inner: R, limits: &Limits, compressed: u64) -> Self {
        let by_ratio = compressed.max(1).saturating_mul(limits.max_inflate_ratio);
        let (cap, what) = if by_ratio < limits.max_inflated_bytes {
            (
                by_ratio,
                format!(
                    "{} times the upload's {compressed} bytes (WEARHOUSE_IMPORT_MAX_INFLATE_RATIO)",
                    limits.max_inflate_ratio
                ),
            )
        } else {
            (
                limits.max_inflated_bytes,
                "the limit (WEARHOUSE_IMPORT_MAX_INFLATED_BYTES)".to_string(),
            )
        };
        InflateGuard {
            inner,
            inflated: 0,
            cap,
            what,
        }
    }
}

impl<R: Read> Read for InflateGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inflated > self.cap {
            return Err(LimitExceeded::io(format!(
                "the zip's export.xml inflates to more than {} bytes, {}: refused as a zip bomb",
                self.cap, self.what
            )));
        }
        // Never more than one byte past the cap is read, so the check above fires in time.
        let room = (self.cap + 1 - self.inflated).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..room])?;
        self.inflated += n as u64;
        Ok(n)
    }
}

/// Bounds the bytes quick-xml takes for one event: it buffers a whole tag or text node, so a
/// gigabyte attribute would otherwise be held whole. The parser calls [`EventGuard::next_event`]
/// before each event.
pub struct EventGuard<R> {
    inner: R,
    used: u64,
    cap: u64,
}

impl<R> EventGuard<R> {
    pub fn new(inner: R, cap: u64) -> Self {
        EventGuard {
            inner,
            used: 0,
            cap,
        }
    }

    pub fn next_event(&mut self) {
        self.used = 0;
    }

    /// Whether the event just read was over the cap: one that arrived in a single buffer fill
    /// passes `fill_buf`'s check.
    pub fn over(&self) -> Option<String> {
        (self.used > self.cap).then(|| self.message())
    }

    fn message(&self) -> String {
        format!(
            "one XML tag or text node is longer than {} bytes (WEARHOUSE_IMPORT_MAX_XML_EVENT_BYTES)",
            self.cap
        )
    }
}

impl<R: BufRead> Read for EventGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for EventGuard<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.used > self.cap {
            return Err(LimitExceeded::io(self.message()));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.used += amt as u64;
        self.inner.consume(amt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflate_guard_stops_at_the_smaller_cap() {
        let limits = Limits {
            max_inflated_bytes: 1000,
            max_inflate_ratio: 10,
            ..Limits::default()
        };
        let zeros = io::repeat(0).take(10_000);
        let mut g = InflateGuard::new(zeros, &limits, 50);
        let mut sink = Vec::new();
        let e = g.read_to_end(&mut sink).unwrap_err();
        assert!(
            LimitExceeded::find(&e).unwrap().0.contains("10 times"),
            "{e}"
        );
        assert_eq!(sink.len(), 501);
        let mut g = InflateGuard::new(io::repeat(0).take(10_000), &limits, 5000);
        let e = g.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("MAX_INFLATED_BYTES"), "{e}");
        let mut g = InflateGuard::new(io::repeat(0).take(1000), &limits, 5000);
        assert_eq!(g.read_to_end(&mut Vec::new()).unwrap(), 1000);
    }
}
