//! The header record: who wrote the file, why, with which settings, and how its clock maps to
//! real time.
//!
//! The payload is a list of fields `(key varint, len varint, value[len])`; integers are varints
//! inside the value, strings are UTF-8. Readers skip keys they do not know, so fields can be added
//! in minor versions.

use crate::varint;

/// One reading of the trace clock, the OS monotonic clock and the wall clock, taken together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockSample {
    /// The trace clock (CPU timestamp counter ticks, or monotonic nanoseconds).
    pub ticks: u64,
    /// `CLOCK_MONOTONIC`, nanoseconds.
    pub monotonic_ns: u64,
    /// Wall clock, nanoseconds since the Unix epoch (UTC).
    pub wall_ns: u64,
}

/// How the trace clock maps to nanoseconds and to dates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockCalibration {
    /// The trace clock's source: `"tsc"` (CPU timestamp counter) or `"monotonic"`.
    pub source: String,
    /// Event times are stored in units of `2^unit_shift` ticks.
    pub unit_shift: u8,
    /// The first calibration sample.
    pub start: ClockSample,
    /// The second calibration sample, taken later; the rate between the two gives the tick
    /// frequency.
    pub end: ClockSample,
}

impl ClockCalibration {
    /// A converter from stored time units to Unix nanoseconds.
    pub fn converter(&self) -> TimeConverter {
        let ticks = self.end.ticks.saturating_sub(self.start.ticks);
        let nanos = self
            .end
            .monotonic_ns
            .saturating_sub(self.start.monotonic_ns);
        // Nanoseconds per tick in fixed point; a degenerate calibration falls back to 1.
        let ns_per_tick_fp = if ticks == 0 || nanos == 0 {
            1u128 << FRAC_BITS
        } else {
            (((nanos as u128) << FRAC_BITS) + ticks as u128 / 2) / ticks as u128
        };
        TimeConverter {
            unit_shift: self.unit_shift.min(32),
            origin_ticks: self.start.ticks,
            origin_wall_ns: self.start.wall_ns,
            ns_per_tick_fp,
        }
    }
}

/// Fractional bits of the nanoseconds-per-tick ratio: tick counts below 2^64 times a ratio below
/// 2^24 stay within 128 bits.
const FRAC_BITS: u32 = 40;

/// Converts stored time units to nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug)]
pub struct TimeConverter {
    unit_shift: u8,
    origin_ticks: u64,
    origin_wall_ns: u64,
    ns_per_tick_fp: u128,
}

impl TimeConverter {
    /// The Unix time in nanoseconds of a stored time value.
    #[inline]
    pub fn unix_ns(&self, units: u64) -> u64 {
        let ticks = self.ticks(units);
        let (delta, negative) = if ticks >= self.origin_ticks {
            (ticks - self.origin_ticks, false)
        } else {
            (self.origin_ticks - ticks, true)
        };
        let ns = scale(delta, self.ns_per_tick_fp);
        if negative {
            self.origin_wall_ns.saturating_sub(ns)
        } else {
            self.origin_wall_ns.saturating_add(ns)
        }
    }

    /// Stored time units to clock ticks, saturating (a plain shift would drop the high bits).
    #[inline]
    fn ticks(&self, units: u64) -> u64 {
        if units > u64::MAX >> self.unit_shift {
            u64::MAX
        } else {
            units << self.unit_shift
        }
    }

    /// Nanoseconds spanned by a number of stored time units.
    #[inline]
    pub fn units_to_ns(&self, units: u64) -> u64 {
        let ticks = self.ticks(units);
        scale(ticks, self.ns_per_tick_fp)
    }
}

/// `ticks * ratio`, rounded to the nearest nanosecond, saturating.
#[inline]
fn scale(ticks: u64, ratio_fp: u128) -> u64 {
    let product = match u64::try_from(ratio_fp) {
        // The usual ratio fits in 64 bits: one widening multiply, and neither the product nor
        // the rounding below can overflow ((2^64 - 1)^2 + 2^39 < 2^128). Same result.
        Ok(ratio) => u128::from(ticks) * u128::from(ratio) + (1 << (FRAC_BITS - 1)),
        Err(_) => (ticks as u128)
            .saturating_mul(ratio_fp)
            .saturating_add(1 << (FRAC_BITS - 1)),
    };
    (product >> FRAC_BITS).min(u64::MAX as u128) as u64
}

/// The contents of the header record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// `"flight-recorder"` for a snapshot of the in-memory window, `"trace"` for a full trace.
    pub mode: String,
    /// Why the file was written (`"manual"`, `"periodic"`, a trigger name, …).
    pub reason: String,
    /// A short tag given with the reason (may be empty).
    pub tag: String,
    /// The program's name.
    pub program: String,
    /// The process id.
    pub pid: u64,
    /// The host name.
    pub host: String,
    /// The command line, arguments separated by spaces.
    pub cmdline: String,
    /// The version of the recorder that wrote the file.
    pub recorder_version: String,
    /// The clock calibration.
    pub clock: ClockCalibration,
    /// The flight recorder's `min_age` setting, nanoseconds (0 for a full trace).
    pub min_age_ns: u64,
    /// The flight recorder's `max_bytes` setting (0 for a full trace).
    pub max_bytes: u64,
    /// The size of a thread's event buffer, bytes.
    pub chunk_size: u64,
    /// The version of the program that wrote the file, as the program gave it (may be empty).
    pub program_version: String,
    /// Details of what triggered the file, as name/value pairs in the writer's order (for a slow
    /// poll: the task, the thread, how long the poll had run, …). May be empty.
    pub details: Vec<(String, String)>,
    /// Triggered dumps suppressed (rate limited or coalesced) since the previous file was written.
    pub suppressed_triggers: u64,
    /// The service the program belongs to, which groups a fleet's files (version 1.3; empty in
    /// older files: [`Header::service_name`] then gives the program's name).
    pub service: String,
}

impl Default for Header {
    /// An empty header: every text empty, every number 0, no details.
    fn default() -> Self {
        Header {
            mode: String::new(),
            reason: String::new(),
            tag: String::new(),
            program: String::new(),
            pid: 0,
            host: String::new(),
            cmdline: String::new(),
            recorder_version: String::new(),
            clock: ClockCalibration {
                source: String::new(),
                unit_shift: 0,
                start: ClockSample::default(),
                end: ClockSample::default(),
            },
            min_age_ns: 0,
            max_bytes: 0,
            chunk_size: 0,
            program_version: String::new(),
            details: Vec::new(),
            suppressed_triggers: 0,
            service: String::new(),
        }
    }
}

mod key {
    pub const MODE: u64 = 1;
    pub const REASON: u64 = 2;
    pub const TAG: u64 = 3;
    pub const PROGRAM: u64 = 4;
    pub const PID: u64 = 5;
    pub const HOST: u64 = 6;
    pub const CMDLINE: u64 = 7;
    pub const RECORDER_VERSION: u64 = 8;
    pub const CLOCK_SOURCE: u64 = 9;
    pub const UNIT_SHIFT: u64 = 10;
    pub const START_TICKS: u64 = 11;
    pub const START_MONOTONIC: u64 = 12;
    pub const START_WALL: u64 = 13;
    pub const END_TICKS: u64 = 14;
    pub const END_MONOTONIC: u64 = 15;
    pub const END_WALL: u64 = 16;
    pub const MIN_AGE_NS: u64 = 17;
    pub const MAX_BYTES: u64 = 18;
    pub const CHUNK_SIZE: u64 = 19;
    pub const PROGRAM_VERSION: u64 = 20;
    pub const DETAIL: u64 = 21;
    pub const SUPPRESSED_TRIGGERS: u64 = 22;
    pub const SERVICE: u64 = 23;
}

impl Header {
    /// The service the file belongs to: the `service` field, or the program's name for a file
    /// written without one.
    pub fn service_name(&self) -> &str {
        if self.service.is_empty() {
            &self.program
        } else {
            &self.service
        }
    }

    /// Encodes the header record's payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let text = |key: u64, value: &str, out: &mut Vec<u8>| {
            varint::push(key, out);
            varint::push(value.len() as u64, out);
            out.extend_from_slice(value.as_bytes());
        };
        text(key::MODE, &self.mode, &mut out);
        text(key::REASON, &self.reason, &mut out);
        text(key::TAG, &self.tag, &mut out);
        text(key::PROGRAM, &self.program, &mut out);
        text(key::HOST, &self.host, &mut out);
        text(key::CMDLINE, &self.cmdline, &mut out);
        text(key::RECORDER_VERSION, &self.recorder_version, &mut out);
        text(key::CLOCK_SOURCE, &self.clock.source, &mut out);
        text(key::PROGRAM_VERSION, &self.program_version, &mut out);
        if !self.service.is_empty() {
            text(key::SERVICE, &self.service, &mut out);
        }
        for (name, value) in &self.details {
            // One field per pair: `name:bytes value:bytes`.
            let len = varint::encoded_len(name.len() as u64)
                + name.len()
                + varint::encoded_len(value.len() as u64)
                + value.len();
            varint::push(key::DETAIL, &mut out);
            varint::push(len as u64, &mut out);
            varint::push(name.len() as u64, &mut out);
            out.extend_from_slice(name.as_bytes());
            varint::push(value.len() as u64, &mut out);
            out.extend_from_slice(value.as_bytes());
        }
        let c = &self.clock;
        let numbers = [
            (key::PID, self.pid),
            (key::UNIT_SHIFT, u64::from(c.unit_shift)),
            (key::START_TICKS, c.start.ticks),
            (key::START_MONOTONIC, c.start.monotonic_ns),
            (key::START_WALL, c.start.wall_ns),
            (key::END_TICKS, c.end.ticks),
            (key::END_MONOTONIC, c.end.monotonic_ns),
            (key::END_WALL, c.end.wall_ns),
            (key::MIN_AGE_NS, self.min_age_ns),
            (key::MAX_BYTES, self.max_bytes),
            (key::CHUNK_SIZE, self.chunk_size),
            (key::SUPPRESSED_TRIGGERS, self.suppressed_triggers),
        ];
        for (key, value) in numbers {
            varint::push(key, &mut out);
            varint::push(varint::encoded_len(value) as u64, &mut out);
            varint::push(value, &mut out);
        }
        out
    }

    /// Decodes a header record's payload; unknown keys are skipped. Returns a description of the
    /// problem for a malformed payload.
    pub fn decode(payload: &[u8]) -> Result<Header, &'static str> {
        let mut header = Header::default();
        let mut pos = 0;
        while pos < payload.len() {
            let key = varint::decode(payload, &mut pos).ok_or("bad header field key")?;
            let len = varint::decode(payload, &mut pos).ok_or("bad header field length")?;
            let end = pos
                .checked_add(usize::try_from(len).map_err(|_| "bad header field length")?)
                .filter(|&end| end <= payload.len())
                .ok_or("header field runs past the record")?;
            let value = &payload[pos..end];
            pos = end;
            let text = || String::from_utf8_lossy(value).into_owned();
            let number = || {
                let mut p = 0;
                varint::decode(value, &mut p).ok_or("bad header number")
            };
            match key {
                key::MODE => header.mode = text(),
                key::REASON => header.reason = text(),
                key::TAG => header.tag = text(),
                key::PROGRAM => header.program = text(),
                key::HOST => header.host = text(),
                key::CMDLINE => header.cmdline = text(),
                key::RECORDER_VERSION => header.recorder_version = text(),
                key::CLOCK_SOURCE => header.clock.source = text(),
                key::PID => header.pid = number()?,
                key::UNIT_SHIFT => header.clock.unit_shift = number()?.min(32) as u8,
                key::START_TICKS => header.clock.start.ticks = number()?,
                key::START_MONOTONIC => header.clock.start.monotonic_ns = number()?,
                key::START_WALL => header.clock.start.wall_ns = number()?,
                key::END_TICKS => header.clock.end.ticks = number()?,
                key::END_MONOTONIC => header.clock.end.monotonic_ns = number()?,
                key::END_WALL => header.clock.end.wall_ns = number()?,
                key::MIN_AGE_NS => header.min_age_ns = number()?,
                key::MAX_BYTES => header.max_bytes = number()?,
                key::CHUNK_SIZE => header.chunk_size = number()?,
                key::PROGRAM_VERSION => header.program_version = text(),
                key::DETAIL => header.details.push(detail(value)?),
                key::SUPPRESSED_TRIGGERS => header.suppressed_triggers = number()?,
                key::SERVICE => header.service = text(),
                _ => {}
            }
        }
        Ok(header)
    }
}

/// Decodes one detail field's value, `name:bytes value:bytes` (bytes after them are ignored).
fn detail(value: &[u8]) -> Result<(String, String), &'static str> {
    let mut pos = 0;
    let mut bytes = || -> Result<String, &'static str> {
        let len = varint::decode(value, &mut pos).ok_or("bad header detail")?;
        let end = pos
            .checked_add(usize::try_from(len).map_err(|_| "bad header detail")?)
            .filter(|&end| end <= value.len())
            .ok_or("bad header detail")?;
        let text = String::from_utf8_lossy(&value[pos..end]).into_owned();
        pos = end;
        Ok(text)
    };
    let name = bytes()?;
    let value = bytes()?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {

    #[test]
    fn scaling_matches_the_saturating_reference() {
        let reference = |ticks: u64, ratio: u128| -> u64 {
            let product = (ticks as u128).saturating_mul(ratio);
            (product.saturating_add(1 << (FRAC_BITS - 1)) >> FRAC_BITS).min(u64::MAX as u128) as u64
        };
        let ticks = [
            0,
            1,
            2,
            3,
            1 << 20,
            123_456_789_012,
            u64::MAX >> 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        let ratios = [
            0u128,
            1,
            1 << FRAC_BITS,
            (1 << FRAC_BITS) / 3,
            u128::from(u64::MAX),
            u128::from(u64::MAX) + 1,
            1 << 100,
            u128::MAX,
        ];
        for &t in &ticks {
            for &r in &ratios {
                assert_eq!(scale(t, r), reference(t, r), "{t} × {r}");
            }
        }
    }
    use super::*;

    fn calibration() -> ClockCalibration {
        ClockCalibration {
            source: "tsc".into(),
            unit_shift: 1,
            start: ClockSample {
                ticks: 3_000_000_000,
                monotonic_ns: 1_000_000_000,
                wall_ns: 1_700_000_000_000_000_000,
            },
            end: ClockSample {
                ticks: 6_000_000_000,
                monotonic_ns: 2_000_000_000,
                wall_ns: 1_700_000_001_000_000_000,
            },
        }
    }

    #[test]
    fn converter_maps_ticks_to_unix_time() {
        let conv = calibration().converter();
        // 3 GHz, units of 2 ticks: 1.5e9 units past the origin's 1.5e9 units = 1 s later.
        assert_eq!(conv.unix_ns(1_500_000_000), 1_700_000_000_000_000_000);
        assert_eq!(conv.unix_ns(3_000_000_000), 1_700_000_001_000_000_000);
        assert_eq!(conv.units_to_ns(3), 2);
        // Before the origin.
        assert_eq!(conv.unix_ns(0), 1_699_999_999_000_000_000);
    }

    #[test]
    fn header_round_trips_and_skips_unknown_keys() {
        let header = Header {
            mode: "flight-recorder".into(),
            reason: "manual".into(),
            tag: "slow_request".into(),
            program: "demo".into(),
            pid: 4242,
            host: "box".into(),
            cmdline: "demo --flag".into(),
            recorder_version: "0.1.0".into(),
            clock: calibration(),
            min_age_ns: 10_000_000_000,
            max_bytes: 10 << 20,
            chunk_size: 65536,
            program_version: "demo 1.2.3".into(),
            details: vec![
                ("trigger".into(), "slow_poll".into()),
                ("task".into(), "7".into()),
                ("task".into(), "repeated names are kept".into()),
                (String::new(), String::new()),
            ],
            suppressed_triggers: 49,
            service: "checkout".into(),
        };
        let mut payload = header.encode();
        // An unknown field from a later minor version.
        varint::push(999, &mut payload);
        varint::push(3, &mut payload);
        payload.extend_from_slice(b"new");
        let decoded = Header::decode(&payload).unwrap();
        assert_eq!(decoded.service_name(), "checkout");
        assert_eq!(decoded, header);
    }

    #[test]
    fn header_without_new_fields_decodes_them_empty() {
        // A 1.0 header written before keys 20-22 existed.
        let mut payload = Vec::new();
        varint::push(2, &mut payload);
        varint::push(6, &mut payload);
        payload.extend_from_slice(b"manual");
        let header = Header::decode(&payload).unwrap();
        assert_eq!(header.reason, "manual");
        assert_eq!(header.program_version, "");
        assert!(header.details.is_empty());
        assert_eq!(header.suppressed_triggers, 0);
        assert_eq!(header.service, "");
    }

    #[test]
    fn a_header_without_a_service_names_the_program() {
        // Files written before key 23 existed belong to the service named after their program.
        let header = Header {
            program: "api-server".into(),
            ..Header::default()
        };
        let decoded = Header::decode(&header.encode()).unwrap();
        assert_eq!(decoded.service, "");
        assert_eq!(decoded.service_name(), "api-server");
    }

    #[test]
    fn a_bad_detail_is_an_error() {
        let mut payload = Vec::new();
        varint::push(21, &mut payload);
        varint::push(2, &mut payload);
        // A name of 5 bytes in a 2-byte value.
        payload.extend_from_slice(&[5, b'a']);
        assert_eq!(Header::decode(&payload), Err("bad header detail"));
    }

    #[test]
    fn header_field_past_the_end_is_an_error() {
        let mut payload = Vec::new();
        varint::push(1, &mut payload);
        varint::push(100, &mut payload);
        payload.extend_from_slice(b"short");
        assert!(Header::decode(&payload).is_err());
    }
}
