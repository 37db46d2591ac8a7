//! A small FIT encoder, so the simulator can serve real activity files: a 14-byte header,
//! one definition message per message type, little-endian data messages, and the CRC-16 that
//! the FIT protocol puts after the header and at the end of the file. Only what an activity
//! file needs is here: file_id, record, lap, session and activity messages.

/// Seconds between the Unix epoch and the FIT epoch (1989-12-31T00:00:00Z).
const FIT_EPOCH: i64 = 631_065_600;

/// FIT base types used here (the profile's base type numbers).
const ENUM: u8 = 0x00;
const SINT8: u8 = 0x01;
const UINT8: u8 = 0x02;
const UINT16: u8 = 0x84;
const SINT32: u8 = 0x85;
const UINT32: u8 = 0x86;
const UINT32Z: u8 = 0x8C;

/// The CRC the FIT protocol uses (CRC-16 with the reflected polynomial 0xA001, start 0).
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for b in bytes {
        crc ^= u16::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// One field of a message: its number, base type and little-endian bytes.
struct Field(u8, u8, Vec<u8>);

fn u8f(num: u8, v: u8) -> Field {
    Field(num, UINT8, vec![v])
}
fn enumf(num: u8, v: u8) -> Field {
    Field(num, ENUM, vec![v])
}
fn i8f(num: u8, v: i8) -> Field {
    Field(num, SINT8, v.to_le_bytes().to_vec())
}
fn u16f(num: u8, v: u16) -> Field {
    Field(num, UINT16, v.to_le_bytes().to_vec())
}
fn i32f(num: u8, v: i32) -> Field {
    Field(num, SINT32, v.to_le_bytes().to_vec())
}
fn u32f(num: u8, v: u32) -> Field {
    Field(num, UINT32, v.to_le_bytes().to_vec())
}
fn time(num: u8, unix: i64) -> Field {
    u32f(num, (unix - FIT_EPOCH) as u32)
}

/// A message layout: (field number, size, base type) per field.
type Layout = Vec<(u8, u8, u8)>;

#[derive(Default)]
struct Encoder {
    data: Vec<u8>,
    /// The field layout defined for each local message type so far.
    defined: Vec<(u8, u16, Layout)>,
}

impl Encoder {
    /// Writes a data message of global message `global` on local type `local`, preceded by a
    /// definition message whenever the layout of that local type changes.
    fn message(&mut self, local: u8, global: u16, fields: &[Field]) {
        let layout: Layout = fields
            .iter()
            .map(|Field(n, t, b)| (*n, b.len() as u8, *t))
            .collect();
        let current = self.defined.iter().position(|(l, _, _)| *l == local);
        let same =
            current.is_some_and(|i| self.defined[i].1 == global && self.defined[i].2 == layout);
        if !same {
            // Definition header: bit 6 set, then reserved, architecture (0 = little endian),
            // global message number, field count and (number, size, base type) per field.
            self.data.push(0x40 | local);
            self.data.push(0);
            self.data.push(0);
            self.data.extend_from_slice(&global.to_le_bytes());
            self.data.push(layout.len() as u8);
            for (n, size, t) in &layout {
                self.data.extend_from_slice(&[*n, *size, *t]);
            }
            match current {
                Some(i) => self.defined[i] = (local, global, layout),
                None => self.defined.push((local, global, layout)),
            }
        }
        self.data.push(local);
        for Field(_, _, b) in fields {
            self.data.extend_from_slice(b);
        }
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 16);
        out.push(14);
        out.push(0x20); // protocol 2.0
        out.extend_from_slice(&2132u16.to_le_bytes()); // profile 21.32
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(b".FIT");
        let header_crc = crc16(&out);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&self.data);
        let crc = crc16(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}

/// What the simulated activity looks like.
#[derive(Debug, Clone)]
pub struct FitActivity {
    pub start_unix: i64,
    /// The device's local offset from UTC.
    pub offset_s: i32,
    /// Elapsed time; the activity has two laps of half that each.
    pub seconds: u32,
    /// Seconds between records.
    pub step: u32,
}

/// A running activity as a FIT file. Record `i` (at `start + step·i`) has heart rate
/// `130 + i % 30`, speed `3.0 + 0.1·(i % 5)` m/s, 85 strides a minute, power `250 + i % 20` W,
/// altitude `100 + i % 10` m, position `(40.7128 + 0.0001·i, -74.0060 + 0.0001·i)`, 18 °C,
/// and distance `32·i` m (3.2 m/s on average, so 0.32·seconds metres in all).
pub fn activity_file(a: &FitActivity) -> Vec<u8> {
    let step = a.step.max(1);
    let n = a.seconds / step;
    let per_record = 3.2 * f64::from(step);
    let total_m = per_record * f64::from(n);
    let end = a.start_unix + i64::from(a.seconds);
    let semicircles = |deg: f64| (deg / 180.0 * 2_147_483_648.0).round() as i32;
    let mut e = Encoder::default();
    e.message(
        0,
        0,
        &[
            enumf(0, 4), // activity file
            u16f(1, 1),  // manufacturer: garmin
            u16f(2, 3113),
            Field(3, UINT32Z, 3_350_123_456u32.to_le_bytes().to_vec()),
            time(4, a.start_unix),
        ],
    );
    for i in 0..n {
        let t = a.start_unix + i64::from(step * i);
        e.message(
            1,
            20,
            &[
                time(253, t),
                i32f(0, semicircles(40.7128 + 0.0001 * f64::from(i))),
                i32f(1, semicircles(-74.0060 + 0.0001 * f64::from(i))),
                u16f(2, ((100 + i % 10 + 500) * 5) as u16),
                u8f(3, (130 + i % 30) as u8),
                u8f(4, 85),
                u32f(5, (per_record * f64::from(i) * 100.0).round() as u32),
                u16f(6, (3000 + 100 * (i % 5)) as u16),
                u16f(7, (250 + i % 20) as u16),
                i8f(13, 18),
            ],
        );
    }
    let half = a.seconds / 2;
    for lap in 0..2u32 {
        let ls = a.start_unix + i64::from(half * lap);
        e.message(
            2,
            19,
            &[
                time(253, ls + i64::from(half)),
                time(2, ls),
                u32f(7, half * 1000),
                u32f(8, half * 1000),
                u32f(9, (total_m / 2.0 * 100.0).round() as u32),
                u16f(11, 75),
                u8f(15, 144),
                u8f(16, 159),
                u16f(19, 259),
                u16f(254, lap as u16),
            ],
        );
    }
    e.message(
        3,
        18,
        &[
            time(253, end),
            time(2, a.start_unix),
            enumf(5, 1), // running
            enumf(6, 0), // generic
            u32f(7, a.seconds * 1000),
            u32f(8, a.seconds * 1000),
            u32f(9, (total_m * 100.0).round() as u32),
            u16f(11, 150),
            u16f(14, 3200),
            u16f(15, 3400),
            u8f(16, 144),
            u8f(17, 159),
            u8f(18, 85),
            u16f(20, 259),
            u16f(21, 269),
            u16f(22, 9),
            u16f(25, 0),
            u16f(26, 2),
        ],
    );
    e.message(
        4,
        34,
        &[
            time(253, end),
            u32f(0, a.seconds * 1000),
            u16f(1, 1),
            enumf(2, 0),  // manual
            enumf(3, 26), // activity
            enumf(4, 1),  // stop
            u32f(5, (end + i64::from(a.offset_s) - FIT_EPOCH) as u32),
        ],
    );
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_fit_check_value() {
        // CRC-16/ARC of "123456789" is 0xBB3D.
        assert_eq!(crc16(b"123456789"), 0xBB3D);
    }

    #[test]
    fn files_are_valid_fit_with_checksums() {
        let f = activity_file(&FitActivity {
            start_unix: 1_772_366_400,
            offset_s: 3600,
            seconds: 120,
            step: 60,
        });
        assert_eq!(&f[8..12], b".FIT");
        let data_len = u32::from_le_bytes([f[4], f[5], f[6], f[7]]) as usize;
        assert_eq!(f.len(), 14 + data_len + 2);
        assert_eq!(
            crc16(&f),
            0,
            "the trailing CRC makes the whole file check to zero"
        );
        let parsed = fitparser::from_bytes(&f).expect("fitparser reads it");
        let kinds: Vec<String> = parsed.iter().map(|r| r.kind().to_string()).collect();
        assert_eq!(
            kinds,
            ["file_id", "record", "record", "lap", "lap", "session", "activity"]
        );
    }
}
