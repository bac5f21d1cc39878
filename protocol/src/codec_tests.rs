//! Codec tests: round trips of every message, hostile input, and limits.

use crate::codec::{DecodeError, Decoder, EncodeError, decode_exact, encode, encode_into};
use crate::limits::{MAX_CONTROL_MESSAGE_BYTES, MAX_DISPLAYS, MAX_TEXT_BYTES, MAX_VIDEO_FRAME_BYTES};
use crate::message::*;
use crate::{Capabilities, Pin, PROTOCOL_VERSION, SessionId};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

fn ping() -> Message {
    Message::Ping(Ping { nonce: 7, sent_us: 1_000 })
}

fn app_hello(displays: usize) -> Message {
    Message::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        role: HelloRole::App {
            code: AppCode::Pin(Pin::from_number(123_456).unwrap()),
            info: AppInfo {
                os: "Debian GNU/Linux 12".into(),
                host_name: "reception-pc".into(),
                app_version: "0.1.0".into(),
                displays: (0..displays)
                    .map(|i| DisplayInfo {
                        id: i as u32,
                        name: format!("screen {i}"),
                        width: 1920,
                        height: 1080,
                        primary: i == 0,
                    })
                    .collect(),
            },
            resume: None,
        },
    })
}

fn frame(len: usize) -> Message {
    Message::VideoFrame(VideoFrame {
        seq: 1,
        capture_us: 2,
        keyframe: true,
        display: 0,
        width: 1920,
        height: 1080,
        codec: VideoCodec::H264,
        data: vec![0x42; len],
    })
}

/// Runs a property on a thread with a large stack: the derived strategies for the nested
/// message types need more than a test thread's 2 MiB in unoptimised builds.
fn check_property<S, M, F>(cases: u32, make_strategy: M, test: F)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    M: FnOnce() -> S + Send + 'static,
    F: Fn(S::Value) -> Result<(), TestCaseError> + Send + 'static,
{
    std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(move || {
            let mut runner = TestRunner::new(ProptestConfig::with_cases(cases));
            if let Err(e) = runner.run(&make_strategy(), test) {
                panic!("{e}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn every_message_round_trips() {
    check_property(2_000, any::<Message>, |message| {
        let bytes = encode(&message).unwrap();
        prop_assert_eq!(decode_exact(&bytes, MAX_VIDEO_FRAME_BYTES).unwrap(), message);
        Ok(())
    });
}

#[test]
fn streams_decode_whatever_the_chunking() {
    let strategy = || (proptest::collection::vec(any::<Message>(), 1..8), 1usize..64);
    check_property(500, strategy, |(messages, chunk)| {
        let mut wire = Vec::new();
        for m in &messages {
            encode_into(m, &mut wire).unwrap();
        }
        let mut decoder = Decoder::media();
        let mut decoded = Vec::new();
        for piece in wire.chunks(chunk) {
            decoder.push(piece).unwrap();
            while let Some(m) = decoder.next_message().unwrap() {
                decoded.push(m);
            }
        }
        prop_assert_eq!(decoded, messages);
        prop_assert_eq!(decoder.buffered(), 0);
        Ok(())
    });
}

#[test]
fn messages_survive_json_too() {
    // The web console and the audit log carry some of these types as JSON.
    check_property(500, any::<Message>, |message| {
        let json = serde_json::to_string(&message).unwrap();
        prop_assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), message);
        Ok(())
    });
}

#[test]
fn header_is_length_then_version() {
    let bytes = encode(&ping()).unwrap();
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(len, bytes.len() - 4);
    assert_eq!(bytes[4], PROTOCOL_VERSION);
}

#[test]
fn unknown_version_is_refused() {
    let mut bytes = encode(&ping()).unwrap();
    bytes[4] = PROTOCOL_VERSION + 1;
    assert_eq!(decode_exact(&bytes, 1024), Err(DecodeError::UnknownVersion(PROTOCOL_VERSION + 1)));
}

#[test]
fn unknown_variant_is_refused() {
    let mut bytes = encode(&ping()).unwrap();
    bytes[5] = 0x7f; // the message kind: a varint far beyond the last variant
    assert_eq!(decode_exact(&bytes, 1024), Err(DecodeError::UnknownVariant));
    // A multi-byte varint kind, and the first kind past the last one.
    bytes[5] = 0x80;
    bytes.insert(6, 0x01);
    let len = (bytes.len() - 4) as u32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(decode_exact(&bytes, 1024), Err(DecodeError::UnknownVariant));
    let last = encode(&Message::FileResult(FileResult { transfer: 1, saved: true, message: String::new() })).unwrap();
    assert_eq!(u32::from(last[5]), Message::KINDS - 1, "FileResult is the last kind: update KINDS");
    let bye = encode(&Message::Bye(Bye { reason: ByeReason::Normal, message: String::new() })).unwrap();
    let mut next_kind = bye.clone();
    next_kind[5] = Message::KINDS as u8;
    assert_eq!(decode_exact(&next_kind, 1024), Err(DecodeError::UnknownVariant));
    // An unknown member of a nested enum is refused as malformed.
    let mut nested = bye;
    nested[6] = 0x7f;
    assert!(matches!(decode_exact(&nested, 1024), Err(DecodeError::Malformed(_))));
}

#[test]
fn truncated_input_is_refused_at_every_length() {
    let bytes = encode(&app_hello(2)).unwrap();
    for cut in 0..bytes.len() {
        let result = decode_exact(&bytes[..cut], 1024);
        assert!(
            matches!(result, Err(DecodeError::Truncated) | Err(DecodeError::Empty)),
            "cut at {cut}: {result:?}"
        );
    }
    // A frame whose length field is honest but whose body ends early inside postcard.
    let mut short = bytes.clone();
    short.truncate(bytes.len() - 3);
    let len = (short.len() - 4) as u32;
    short[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(decode_exact(&short, 1024), Err(DecodeError::Truncated));
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = encode(&ping()).unwrap();
    bytes.push(0);
    assert_eq!(decode_exact(&bytes, 1024), Err(DecodeError::TrailingBytes(1)));
    // Inside the frame: a length that covers one byte more than the message.
    let len = (bytes.len() - 4) as u32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(decode_exact(&bytes, 1024), Err(DecodeError::TrailingBytes(1)));
}

#[test]
fn empty_frame_is_refused() {
    assert_eq!(decode_exact(&[0, 0, 0, 0], 1024), Err(DecodeError::Empty));
}

#[test]
fn oversized_announcement_is_refused_before_buffering() {
    let mut decoder = Decoder::control();
    let huge = (MAX_CONTROL_MESSAGE_BYTES as u32 + 1).to_be_bytes();
    assert_eq!(
        decoder.push(&huge),
        Err(DecodeError::Oversized { len: MAX_CONTROL_MESSAGE_BYTES + 1, limit: MAX_CONTROL_MESSAGE_BYTES })
    );
    assert_eq!(decoder.buffered(), 0, "nothing behind a refused header is kept");
    // The decoder stays failed: the stream is out of sync.
    assert!(decoder.push(&encode(&ping()).unwrap()).is_err());
    assert!(decoder.next_message().is_err());
    // Split header: two bytes, then two more.
    let mut decoder = Decoder::control();
    decoder.push(&u32::MAX.to_be_bytes()[..2]).unwrap();
    assert!(matches!(decoder.push(&[0xff, 0xff]), Err(DecodeError::Oversized { .. })));
}

#[test]
fn video_frames_use_the_media_limit() {
    let big = encode(&frame(MAX_CONTROL_MESSAGE_BYTES * 2)).unwrap();
    assert!(matches!(decode_exact(&big, MAX_CONTROL_MESSAGE_BYTES), Err(DecodeError::Oversized { .. })));
    assert!(decode_exact(&big, MAX_VIDEO_FRAME_BYTES).is_ok());
    assert!(matches!(
        encode(&frame(MAX_VIDEO_FRAME_BYTES + 1)),
        Err(EncodeError::Invalid(ValidationError::FrameTooLarge(_)))
    ));
    assert_eq!(encode(&frame(0)), Err(EncodeError::Invalid(ValidationError::EmptyFrame)));
}

#[test]
fn oversized_control_message_is_not_encoded_and_output_is_untouched() {
    let text = "x".repeat(MAX_TEXT_BYTES);
    let huge_stats = Message::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        role: HelloRole::App {
            code: AppCode::Pin(Pin::from_number(1).unwrap()),
            info: AppInfo {
                os: text.clone(),
                host_name: text.clone(),
                app_version: text.clone(),
                displays: (0..MAX_DISPLAYS as u32)
                    .map(|id| DisplayInfo { id, name: text.clone(), width: 1, height: 1, primary: false })
                    .collect(),
            },
            resume: None,
        },
    });
    let mut out = vec![1, 2, 3];
    assert!(matches!(encode_into(&huge_stats, &mut out), Err(EncodeError::Oversized { .. })));
    assert_eq!(out, vec![1, 2, 3]);
}

#[test]
fn rule_breaking_messages_are_refused_both_ways() {
    let too_many = app_hello(MAX_DISPLAYS + 1);
    assert_eq!(encode(&too_many), Err(EncodeError::Invalid(ValidationError::TooManyDisplays(MAX_DISPLAYS + 1))));
    // Build the bytes by hand (bypassing encode's check) and decode them.
    let mut bytes = vec![0, 0, 0, 0, PROTOCOL_VERSION];
    bytes.extend(postcard::to_allocvec(&too_many).unwrap());
    let len = (bytes.len() - 4) as u32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        decode_exact(&bytes, MAX_CONTROL_MESSAGE_BYTES),
        Err(DecodeError::Invalid(ValidationError::TooManyDisplays(MAX_DISPLAYS + 1)))
    );
    let long_text = Message::Input(InputEvent::Text { text: "é".repeat(MAX_TEXT_BYTES) });
    assert!(matches!(encode(&long_text), Err(EncodeError::Invalid(ValidationError::TextTooLong { .. }))));
    let zero_width = Message::VideoFrame(VideoFrame {
        seq: 0,
        capture_us: 0,
        keyframe: false,
        display: 0,
        width: 0,
        height: 10,
        codec: VideoCodec::H264,
        data: vec![1],
    });
    assert_eq!(encode(&zero_width), Err(EncodeError::Invalid(ValidationError::BadDimension(0))));
}

#[test]
fn control_without_view_in_a_consent_decision_is_malformed() {
    let good = encode(&Message::ConsentDecision(ConsentDecision {
        request_id: 1,
        outcome: ConsentOutcome::Granted(Capabilities::VIEW),
    }))
    .unwrap();
    // The last two bytes are the capability booleans (view, control): make it control only.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 2] = 0;
    bad[n - 1] = 1;
    assert!(matches!(decode_exact(&bad, 1024), Err(DecodeError::Malformed(_))));
}

#[test]
fn several_messages_in_one_push_and_byte_by_byte() {
    let messages = [ping(), app_hello(1), Message::KeyframeRequest, frame(300)];
    let mut wire = Vec::new();
    for m in &messages {
        encode_into(m, &mut wire).unwrap();
    }
    let mut whole = Decoder::media();
    whole.push(&wire).unwrap();
    for m in &messages {
        assert_eq!(whole.next_message().unwrap().as_ref(), Some(m));
    }
    assert_eq!(whole.next_message().unwrap(), None);

    let mut trickle = Decoder::media();
    let mut out = Vec::new();
    for b in &wire {
        trickle.push(std::slice::from_ref(b)).unwrap();
        while let Some(m) = trickle.next_message().unwrap() {
            out.push(m);
        }
    }
    assert_eq!(out, messages);
}

/// Valid messages to mutate, drawn from the same generator as the round-trip test.
fn corpus() -> Vec<Vec<u8>> {
    std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(|| {
            let mut runner = TestRunner::deterministic();
            let strategy = any::<Message>();
            (0..300)
                .map(|_| encode(&strategy.new_tree(&mut runner).unwrap().current()).unwrap())
                .collect()
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn hostile_bytes_never_panic_or_overallocate() {
    let corpus = corpus();
    let mut rng = StdRng::seed_from_u64(0xDE5C);
    let mut accepted = 0usize;
    for round in 0..120_000u32 {
        let mut bytes = if round % 4 == 0 {
            let len = rng.random_range(0..256);
            let mut b = vec![0u8; len];
            rng.fill_bytes(&mut b);
            b
        } else {
            corpus[rng.random_range(0..corpus.len())].clone()
        };
        if round % 4 != 0 {
            for _ in 0..rng.random_range(1..5) {
                match rng.random_range(0..5) {
                    0 if !bytes.is_empty() => {
                        let i = rng.random_range(0..bytes.len());
                        bytes[i] ^= 1 << rng.random_range(0..8);
                    }
                    1 if !bytes.is_empty() => {
                        let i = rng.random_range(0..bytes.len());
                        bytes[i] = rng.random();
                    }
                    2 => bytes.truncate(rng.random_range(0..=bytes.len())),
                    3 => {
                        let i = rng.random_range(0..=bytes.len());
                        bytes.insert(i, rng.random());
                    }
                    _ if bytes.len() >= 4 => {
                        // Lie in the length field.
                        let lie: u32 = rng.random();
                        bytes[..4].copy_from_slice(&lie.to_be_bytes());
                    }
                    _ => {}
                }
            }
        }
        if let Ok(m) = decode_exact(&bytes, MAX_VIDEO_FRAME_BYTES) {
            assert!(m.validate().is_ok());
            accepted += 1;
        }
        let mut decoder = Decoder::control();
        for piece in bytes.chunks(rng.random_range(1..64)) {
            if decoder.push(piece).is_err() {
                break;
            }
            assert!(decoder.buffered() <= MAX_CONTROL_MESSAGE_BYTES + 4 + 64);
            match decoder.next_message() {
                Ok(Some(m)) => assert!(m.validate().is_ok()),
                Ok(None) => {}
                Err(_) => break,
            }
        }
    }
    // Some mutations are harmless (a flipped bit in a text or a number): the decoder must
    // accept those, not refuse everything.
    assert!(accepted > 1_000, "only {accepted} mutated messages decoded");
}

#[test]
fn session_ids_and_hello_roles_are_distinct_on_the_wire() {
    let technician = Message::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        role: HelloRole::Technician { token: "abc".into(), session: SessionId(5) },
    });
    let bytes = encode(&technician).unwrap();
    assert_eq!(decode_exact(&bytes, 1024).unwrap(), technician);
    assert_ne!(bytes, encode(&app_hello(0)).unwrap());
}

#[test]
fn chat_lines_must_say_something_and_stay_short() {
    use crate::limits::MAX_CHAT_TEXT_BYTES;
    let line = |text: &str| Message::Chat(ChatLine::to_send(text));
    assert_eq!(line("  \n\t ").validate(), Err(ValidationError::BlankChat));
    assert_eq!(line(&"é".repeat(MAX_CHAT_TEXT_BYTES / 2)).validate(), Ok(()));
    assert!(matches!(line(&"x".repeat(MAX_CHAT_TEXT_BYTES + 1)).validate(), Err(ValidationError::TextTooLong { field: "chat text", .. })));
    // Markup is text like any other: the receivers show it as such.
    let markup = line("<img src=x onerror=alert(1)>");
    assert_eq!(decode_exact(&encode(&markup).unwrap(), MAX_CONTROL_MESSAGE_BYTES).unwrap(), markup);
}

#[test]
fn clipboard_text_is_never_empty_and_fits_a_control_message() {
    use crate::limits::MAX_CLIPBOARD_TEXT_BYTES;
    let clip = |text: &str| Message::Clipboard(ClipboardText { text: text.into() });
    assert_eq!(clip("").validate(), Err(ValidationError::EmptyClipboard));
    // White space alone is something to paste (an indent, a newline).
    assert_eq!(clip(" ").validate(), Ok(()));
    let longest = clip(&"x".repeat(MAX_CLIPBOARD_TEXT_BYTES));
    let bytes = encode(&longest).unwrap();
    assert!(bytes.len() <= MAX_CONTROL_MESSAGE_BYTES);
    assert_eq!(decode_exact(&bytes, MAX_CONTROL_MESSAGE_BYTES).unwrap(), longest);
    assert!(matches!(
        clip(&"x".repeat(MAX_CLIPBOARD_TEXT_BYTES + 1)).validate(),
        Err(ValidationError::TextTooLong { field: "clipboard text", .. })
    ));
}

#[test]
fn offered_file_names_are_plain_names_only() {
    let offer = |name: &str| Message::FileOffer(FileOffer { transfer: 1, name: name.into(), size: 1, sha256: [0; 32], from: String::new() });
    for good in ["report.pdf", "Rapport été 2026.docx", "a", ".bashrc", "x".repeat(255).as_str()] {
        assert_eq!(offer(good).validate(), Ok(()), "{good:?}");
    }
    for bad in ["", ".", "..", "../etc/passwd", "C:\\Windows\\evil.dll", "dir/file", "C:file", "line\nbreak", " lead", "trail ", &"x".repeat(256)] {
        assert_eq!(offer(bad).validate(), Err(ValidationError::BadFileName(bad.into())), "{bad:?}");
    }
}
