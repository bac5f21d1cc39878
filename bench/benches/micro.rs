//! Criterion micro-benchmarks of the per-frame pieces: what the relay does with every frame
//! (validate and decode the frame message), what the app does with every captured frame
//! (draw the cursor, convert and encode), and the rate controller. Run with
//! `cargo bench -p deskline-bench --bench micro`; the end-to-end figures are in
//! `deskline-bench` (see bench/RESULTS.md).
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use deskline_agent::H264Encoder;
use deskline_agent::capture::draw_cursor;
use deskline_agent::platform::CursorImage;
use deskline_agent::rate::{Rate, RateController};
use deskline_bench::content::{Content, Generator};
use deskline_protocol::limits::MAX_VIDEO_FRAME_BYTES;
use deskline_protocol::{Message, Stats, VideoCodec, VideoFrame, decode_exact};
use std::hint::black_box;

fn frame_message(bytes: usize) -> Vec<u8> {
    let frame = VideoFrame { seq: 1, capture_us: 2, keyframe: false, display: 0, width: 1920, height: 1080, codec: VideoCodec::H264, data: vec![0x5a; bytes] };
    deskline_net::framed::encode_frame(frame).unwrap().to_vec()
}

/// The relay's per-frame work on the wire format: validate and decode what an app sent.
fn relay_frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay: decode a frame message");
    for (name, bytes) in [("P-frame 8 KiB", 8 * 1024), ("keyframe 120 KiB", 120 * 1024)] {
        let wire = frame_message(bytes);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &wire, |b, wire| {
            b.iter(|| match decode_exact(black_box(wire), MAX_VIDEO_FRAME_BYTES).unwrap() {
                Message::VideoFrame(f) => black_box(f.seq),
                _ => unreachable!(),
            });
        });
    }
    group.finish();
}

/// The app's per-frame work after capture: the cursor blended in, then BGRA → I420 + H.264.
fn app_frame(c: &mut Criterion) {
    let (w, h) = (1920, 1080);
    let cursor = CursorImage { width: 32, height: 32, hot_x: 1, hot_y: 1, argb: vec![0x80ff_ffff; 32 * 32] };
    let mut image = vec![90u8; w * h * 4];
    c.bench_function("app: draw a 32x32 cursor on 1080p", |b| {
        b.iter(|| draw_cursor(black_box(&mut image), w, h, &cursor, 700, 400));
    });

    let bgra = Generator::new(Content::Typing, w, h).next_frame();
    let mut yuv = openh264::formats::YUVBuffer::new(w, h);
    c.bench_function("app: BGRA -> I420 1080p (openh264 crate)", |b| {
        b.iter(|| yuv.read_bgra8(openh264::formats::BgraSliceU8::new(black_box(&bgra), (w, h))));
    });

    let mut group = c.benchmark_group("app: convert + encode 1080p (openh264, 1 thread)");
    group.sample_size(20);
    for content in [Content::Static, Content::Typing] {
        let mut generator = Generator::new(content, w, h);
        let frames: Vec<Vec<u8>> = (0..8).map(|_| generator.next_frame()).collect();
        let mut encoder = H264Encoder::new(w as u32, h as u32, 4_000_000, 30.0).unwrap();
        encoder.encode_bgra(&frames[0], true, 0).unwrap();
        let mut i = 0;
        group.bench_function(format!("{content:?}"), |b| {
            b.iter(|| {
                i = (i + 1) % frames.len();
                black_box(encoder.encode_bgra(&frames[i], false, 0).unwrap().data.len())
            });
        });
    }
    group.finish();
}

fn rate_controller(c: &mut Criterion) {
    let stats = Stats { window_ms: 1000, frames: 30, frames_dropped: 1, bytes: 500_000, latency_p50_us: 0, rtt_us: 1000 };
    let mut controller = RateController::new(Rate { fps: 30, bitrate_bps: 4_000_000 });
    c.bench_function("app: one rate-controller report", |b| b.iter(|| controller.on_report(black_box(&stats), 0)));
}

criterion_group!(benches, relay_frame, app_frame, rate_controller);
criterion_main!(benches);
