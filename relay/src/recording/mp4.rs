//! Fragmented MP4 (ISO BMFF) of the app's H.264, as it came: no decode, no re-encode.
//!
//! A file is an init segment (`ftyp`, `moov` with the `avc1` sample entry built from the
//! stream's SPS and PPS) followed by one fragment (`moof` + `mdat`) per picture. One picture per
//! fragment costs about 100 bytes each but means a relay killed mid-session leaves a file that
//! plays up to its last whole picture. The boxes are encoded by `mp4-atom`; what is written by
//! hand here is only what that crate leaves to its users: splitting the encoder's Annex B
//! access units into NAL units (start codes, ~20 lines) and laying out the fragments.

use mp4_atom::{
    Avc1, ReadFrom, Avcc, Dinf, Dref, Encode, FourCC, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mehd, Mfhd, Minf, Moof, Moov, Mvex, Mvhd, Stbl, Stco, Stsc,
    Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, TrunSamples, Url, Visual, Vmhd,
};
use std::io::{self, Seek, SeekFrom, Write};
use std::time::Duration;

/// Media time is counted in milliseconds.
pub const TIMESCALE: u32 = 1000;
/// The only track.
const TRACK: u32 = 1;
/// How long the last picture of a file is shown when nothing follows it.
const LAST_PICTURE: Duration = Duration::from_millis(100);

const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const NAL_IDR: u8 = 5;

/// Sample flags (ISO/IEC 14496-12 §8.8.3.1): a sync sample depends on no other…
const SYNC_SAMPLE: u32 = 0x0200_0000;
/// …a P-frame depends on others and is not a sync sample.
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// The NAL units of an Annex B access unit (each without its start code).
pub fn nal_units(access_unit: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = access_unit;
    std::iter::from_fn(move || {
        // Skip to the end of the next start code (00 00 01, or 00 00 00 01).
        let start = rest.windows(3).position(|w| w == [0, 0, 1])? + 3;
        rest = &rest[start..];
        let end = rest.windows(3).position(|w| w == [0, 0, 1]).map_or(rest.len(), |at| {
            // A four-byte start code's leading zero belongs to it, not to this unit.
            if at > 0 && rest[at - 1] == 0 { at - 1 } else { at }
        });
        let (unit, tail) = rest.split_at(end);
        rest = tail;
        Some(unit)
    })
    .filter(|unit| !unit.is_empty())
}

fn nal_type(unit: &[u8]) -> u8 {
    unit[0] & 0x1f
}

/// The stream's parameter sets, taken from a keyframe: what a file's sample entry is made of.
/// A stream whose parameter sets change needs a new file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterSets {
    /// The sequence parameter set (a NAL unit, without start code).
    pub sps: Vec<u8>,
    /// The picture parameter set (a NAL unit, without start code).
    pub pps: Vec<u8>,
}

impl ParameterSets {
    /// The first SPS and PPS of an access unit, if it has both (an encoder's keyframe does).
    pub fn of(access_unit: &[u8]) -> Option<ParameterSets> {
        let mut sps = None;
        let mut pps = None;
        for unit in nal_units(access_unit) {
            match nal_type(unit) {
                NAL_SPS if sps.is_none() && unit.len() >= 4 => sps = Some(unit.to_vec()),
                NAL_PPS if pps.is_none() => pps = Some(unit.to_vec()),
                _ => {}
            }
        }
        Some(ParameterSets { sps: sps?, pps: pps? })
    }
}

/// Is this access unit an IDR picture (a decoder can start here)?
pub fn is_idr(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|unit| nal_type(unit) == NAL_IDR)
}

/// An access unit as an MP4 sample: each NAL unit behind a 4-byte length; the parameter sets
/// (in the sample entry) and access unit delimiters left out.
fn to_sample(access_unit: &[u8]) -> Vec<u8> {
    let mut sample = Vec::with_capacity(access_unit.len());
    for unit in nal_units(access_unit).filter(|u| !matches!(nal_type(u), NAL_SPS | NAL_PPS | NAL_AUD)) {
        sample.extend_from_slice(&(unit.len() as u32).to_be_bytes());
        sample.extend_from_slice(unit);
    }
    sample
}

fn encode(atom: &impl Encode) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    atom.encode(&mut buf).map_err(io::Error::other)?;
    Ok(buf)
}

fn ticks(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A picture waiting for the next one, which says how long it is shown.
struct Pending {
    sample: Vec<u8>,
    keyframe: bool,
    at: Duration,
}

/// Writes one recording file. Pictures are pushed with the time they arrived (from any start);
/// each is written once the next one gives its duration, and [`Mp4Writer::finish`] writes the
/// last and the total duration.
pub struct Mp4Writer<W: Write + Seek> {
    out: W,
    sequence: u32,
    /// Where the movie extends header's duration is, to fill in at the end.
    mehd_duration_at: u64,
    /// Decode time of the next picture written, in [`TIMESCALE`] units.
    decode_time: u64,
    pending: Option<Pending>,
    width: u32,
    height: u32,
    bytes: u64,
}

impl<W: Write + Seek> Mp4Writer<W> {
    /// Writes the init segment for a `width`×`height` stream with these parameter sets.
    pub fn create(mut out: W, width: u32, height: u32, params: &ParameterSets) -> io::Result<Self> {
        let ftyp = Ftyp {
            major_brand: b"iso6".into(),
            minor_version: 0,
            compatible_brands: vec![b"iso6".into(), b"mp41".into(), b"avc1".into()],
        };
        let moov = init_moov(width, height, params)?;
        let mut head = encode(&ftyp)?;
        let moov_bytes = encode(&moov)?;
        // The duration field ends 8 bytes after the mehd box's type and version/flags.
        let mehd = moov_bytes.windows(4).position(|w| w == b"mehd").ok_or_else(|| io::Error::other("no mehd box"))?;
        let mehd_duration_at = (head.len() + mehd + 4 + 4) as u64;
        head.extend_from_slice(&moov_bytes);
        out.write_all(&head)?;
        Ok(Mp4Writer {
            out,
            sequence: 0,
            mehd_duration_at,
            decode_time: 0,
            pending: None,
            width,
            height,
            bytes: head.len() as u64,
        })
    }

    /// The picture size this file was made for.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds a picture that arrived `at` (times must not go back; one that does is shown for
    /// no time).
    pub fn push(&mut self, access_unit: &[u8], keyframe: bool, at: Duration) -> io::Result<()> {
        let next = Pending { sample: to_sample(access_unit), keyframe, at };
        if let Some(previous) = self.pending.replace(next) {
            let duration = at.saturating_sub(previous.at);
            self.write_fragment(&previous, duration)?;
        }
        Ok(())
    }

    /// Writes the last picture (shown until `at`, or briefly if that is not later) and the
    /// file's duration; returns the duration and the bytes written.
    pub fn finish(mut self, at: Duration) -> io::Result<(Duration, u64)> {
        if let Some(last) = self.pending.take() {
            let shown = at.checked_sub(last.at).filter(|d| !d.is_zero()).unwrap_or(LAST_PICTURE);
            self.write_fragment(&last, shown)?;
        }
        self.out.seek(SeekFrom::Start(self.mehd_duration_at))?;
        self.out.write_all(&self.decode_time.to_be_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok((Duration::from_millis(self.decode_time), self.bytes))
    }

    fn write_fragment(&mut self, picture: &Pending, duration: Duration) -> io::Result<()> {
        // At least one tick: a sample shown for no time confuses players.
        let duration = ticks(duration).max(1);
        self.sequence += 1;
        let entry = TrunEntry {
            duration: Some(duration as u32),
            size: Some(picture.sample.len() as u32),
            flags: Some(if picture.keyframe { SYNC_SAMPLE } else { NON_SYNC_SAMPLE }),
            cts: None,
        };
        let mut moof = Moof {
            mfhd: Mfhd { sequence_number: self.sequence },
            traf: vec![Traf {
                tfhd: Tfhd { track_id: TRACK, default_base_is_moof: true, ..Default::default() },
                tfdt: Some(Tfdt { base_media_decode_time: self.decode_time }),
                trun: vec![Trun { data_offset: Some(0), samples: TrunSamples::Explicit(vec![entry]) }],
                ..Default::default()
            }],
        };
        // The sample's bytes start after this moof and the mdat's 8-byte header.
        let moof_len = encode(&moof)?.len();
        moof.traf[0].trun[0].data_offset = Some((moof_len + 8) as i32);
        let mut fragment = encode(&moof)?;
        debug_assert_eq!(fragment.len(), moof_len);
        // (Mdat owns its data: one copy of the picture per fragment, on the recorder's thread.)
        fragment.extend_from_slice(&encode(&Mdat { data: picture.sample.clone() })?);
        self.out.write_all(&fragment)?;
        self.bytes += fragment.len() as u64;
        self.decode_time += duration;
        Ok(())
    }
}

/// How long a recording file plays, counting its whole fragments only: for a file a stopped
/// relay left unfinished (its header says 0).
pub fn whole_duration_ms(mut file: impl io::Read) -> i64 {
    let (mut end, mut fragment_end) = (0, 0);
    // A cut-short last box fails to decode and ends the walk; a fragment counts once its
    // picture (the mdat after its moof) is whole.
    while let Ok(atom) = mp4_atom::Any::read_from(&mut file) {
        match atom {
            mp4_atom::Any::Moof(moof) => {
                for traf in moof.traf {
                    let start = traf.tfdt.map_or(0, |t| t.base_media_decode_time);
                    let runs = traf.trun.iter().flat_map(|run| run.samples.iter());
                    fragment_end = start + runs.map(|s| u64::from(s.duration.unwrap_or(0))).sum::<u64>();
                }
            }
            mp4_atom::Any::Mdat(_) => end = end.max(fragment_end),
            _ => {}
        }
    }
    i64::try_from(end).unwrap_or(i64::MAX)
}

fn init_moov(width: u32, height: u32, params: &ParameterSets) -> io::Result<Moov> {
    let (w, h) = (u16::try_from(width).map_err(io::Error::other)?, u16::try_from(height).map_err(io::Error::other)?);
    let sps = &params.sps;
    let avc1 = Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width: w,
            height: h,
            horizresolution: 72.into(),
            vertresolution: 72.into(),
            frame_count: 1,
            compressor: "".into(),
            depth: 24,
        },
        avcc: Avcc {
            configuration_version: 1,
            avc_profile_indication: sps[1],
            profile_compatibility: sps[2],
            avc_level_indication: sps[3],
            length_size: 4,
            sequence_parameter_sets: vec![params.sps.clone()],
            picture_parameter_sets: vec![params.pps.clone()],
            ext: None,
        },
        btrt: None,
        colr: None,
        pasp: None,
        taic: None,
        fiel: None,
        spatial: None,
    };
    Ok(Moov {
        mvhd: Mvhd { timescale: TIMESCALE, rate: 1.into(), volume: 1.into(), next_track_id: TRACK + 1, ..Default::default() },
        mvex: Some(Mvex {
            mehd: Some(Mehd { fragment_duration: 0 }),
            trex: vec![Trex { track_id: TRACK, default_sample_description_index: 1, ..Default::default() }],
        }),
        trak: vec![Trak {
            tkhd: Tkhd { track_id: TRACK, enabled: true, in_movie: true, width: w.into(), height: h.into(), ..Default::default() },
            mdia: Mdia {
                mdhd: Mdhd { timescale: TIMESCALE, language: "und".into(), ..Default::default() },
                hdlr: Hdlr { handler: FourCC::new(b"vide"), name: "Deskline screen".into() },
                minf: Minf {
                    vmhd: Some(Vmhd::default()),
                    dinf: Dinf { dref: Dref { entries: vec![Url::default().into()] } },
                    stbl: Stbl {
                        stsd: Stsd { codecs: vec![avc1.into()] },
                        stts: Stts::default(),
                        stsc: Stsc::default(),
                        stsz: Stsz::default(),
                        stco: Some(Stco::default()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Decode};
    use std::io::Cursor;

    const SPS: [u8; 6] = [0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01];
    const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];

    fn keyframe() -> Vec<u8> {
        [&[0, 0, 0, 1][..], &SPS, &[0, 0, 0, 1], &PPS, &[0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01]].concat()
    }

    #[test]
    fn access_units_split_into_nal_units() {
        let access_unit = keyframe();
        let units: Vec<&[u8]> = nal_units(&access_unit).collect();
        assert_eq!(units, vec![&SPS[..], &PPS[..], &[0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01][..]]);
        assert_eq!(nal_units(b"no start code").count(), 0);
        assert!(is_idr(&keyframe()));
        assert!(!is_idr(&[0, 0, 0, 1, 0x41, 0x9a]));
        assert_eq!(ParameterSets::of(&keyframe()), Some(ParameterSets { sps: SPS.to_vec(), pps: PPS.to_vec() }));
        assert_eq!(ParameterSets::of(&[0, 0, 0, 1, 0x41, 0x9a]), None);
        // The sample holds the picture alone, behind its length.
        assert_eq!(to_sample(&keyframe()), [&[0, 0, 0, 7][..], &[0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01]].concat());
    }

    #[test]
    fn a_file_reads_back_as_init_and_fragments() {
        let params = ParameterSets::of(&keyframe()).unwrap();
        let mut file = Vec::new();
        {
            let mut writer = Mp4Writer::create(Cursor::new(&mut file), 640, 480, &params).unwrap();
            writer.push(&keyframe(), true, Duration::from_millis(0)).unwrap();
            writer.push(&[0, 0, 0, 1, 0x41, 0x9a, 0x02], false, Duration::from_millis(40)).unwrap();
            writer.finish(Duration::from_millis(100)).unwrap();
        }
        let buf = &mut Cursor::new(&file);
        let mut atoms = Vec::new();
        while (buf.position() as usize) < file.len() {
            atoms.push(Any::decode(buf).unwrap());
        }
        let kinds: Vec<String> = atoms.iter().map(|a| a.kind().to_string()).collect();
        assert_eq!(kinds, ["ftyp", "moov", "moof", "mdat", "moof", "mdat"]);
        let Any::Moov(moov) = &atoms[1] else { panic!() };
        assert_eq!(moov.mvex.as_ref().unwrap().mehd.as_ref().unwrap().fragment_duration, 100, "the total written at the end");
        let Any::Moof(second) = &atoms[4] else { panic!() };
        assert_eq!(second.traf[0].tfdt.as_ref().unwrap().base_media_decode_time, 40);
        let sample = second.traf[0].trun[0].samples.get(0).unwrap();
        assert_eq!((sample.duration, sample.flags), (Some(60), Some(NON_SYNC_SAMPLE)));
        assert_eq!(whole_duration_ms(&file[..]), 100);
        // Cut in the last fragment: the whole ones count.
        assert_eq!(whole_duration_ms(&file[..file.len() - 3]), 40);
        let Any::Mdat(mdat) = &atoms[5] else { panic!() };
        assert_eq!(mdat.data, [0, 0, 0, 3, 0x41, 0x9a, 0x02]);
        // The data offset points from the moof's start at the sample.
        let moof_at = file.windows(4).rposition(|w| w == b"moof").unwrap() - 4;
        let offset = second.traf[0].trun[0].data_offset.unwrap() as usize;
        assert_eq!(&file[moof_at + offset..moof_at + offset + 4], &[0, 0, 0, 3]);
    }
}
