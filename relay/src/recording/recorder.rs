//! The recorder of one session's stream: a thread of its own that writes the app's pictures
//! into MP4 files and the timed log beside them, so a slow disk never holds up the hub (which
//! only queues, and drops to the next keyframe when the queue is full).

use super::mp4::{Mp4Writer, ParameterSets};
use super::{LogLine, log_path, video_path};
use crate::desk::Desk;
use deskline_protocol::SessionId;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

/// Pictures and log lines waiting for the recorder's thread: a few seconds of video.
const QUEUE: usize = 256;

enum Record {
    Picture { data: Vec<u8>, keyframe: bool, width: u32, height: u32, at: Instant },
    Log { kind: &'static str, text: String, at: Instant },
}

/// The hub's handle on a session's recorder. Dropping it ends the recording file being written.
pub struct Recorder {
    tx: SyncSender<Record>,
    /// A picture could not be queued: the next ones would not decode without it, so nothing
    /// is queued until a keyframe.
    waiting_keyframe: bool,
}

impl Recorder {
    /// Starts recording the session into `dir`. `context` is what is true as it starts
    /// (who may see and control), repeated at the head of every file's log.
    pub fn start(desk: Desk, session: SessionId, dir: PathBuf, context: Vec<(&'static str, String)>) -> Recorder {
        let (tx, rx) = sync_channel(QUEUE);
        let runtime = tokio::runtime::Handle::current();
        let context = context.into_iter().collect();
        let spawned = std::thread::Builder::new().name(format!("recorder {session}")).spawn(move || {
            let mut thread = Thread { desk, runtime, session, dir, context, file: None };
            thread.run(rx);
        });
        if let Err(e) = spawned {
            tracing::error!(session = %session, error = %e, "cannot start the recorder");
        }
        Recorder { tx, waiting_keyframe: false }
    }

    /// Queues a picture as it arrived from the app. Returns false when a keyframe is needed (a
    /// picture was dropped, and the ones after it cannot be decoded until one comes).
    pub fn picture(&mut self, data: Vec<u8>, keyframe: bool, width: u32, height: u32) -> bool {
        if self.waiting_keyframe && !keyframe {
            return false;
        }
        match self.tx.try_send(Record::Picture { data, keyframe, width, height, at: Instant::now() }) {
            Ok(()) => {
                self.waiting_keyframe = false;
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.waiting_keyframe = true;
                false
            }
        }
    }

    /// Adds a line to the timed log (dropped if the recorder is far behind).
    pub fn log(&self, kind: &'static str, text: String) {
        let _ = self.tx.try_send(Record::Log { kind, text, at: Instant::now() });
    }
}

/// The file being written.
struct Segment {
    id: i64,
    /// Unbuffered: each picture's fragment is one write, so a relay killed mid-file leaves every
    /// picture it took (the operating system has them).
    video: Mp4Writer<File>,
    log: BufWriter<File>,
    params: ParameterSets,
    started: Instant,
}

struct Thread {
    desk: Desk,
    runtime: tokio::runtime::Handle,
    session: SessionId,
    dir: PathBuf,
    /// The last line of each kind that describes a state (consent, control).
    context: BTreeMap<&'static str, String>,
    file: Option<Segment>,
}

impl Thread {
    fn run(&mut self, rx: Receiver<Record>) {
        while let Ok(record) = rx.recv() {
            let result = match record {
                Record::Picture { data, keyframe, width, height, at } => self.picture(&data, keyframe, width, height, at),
                Record::Log { kind, text, at } => self.log(kind, text, at),
            };
            if let Err(e) = result {
                tracing::error!(session = %self.session, error = %e, "recording stopped: cannot write");
                self.end(Instant::now());
                // Nothing more is written; the queue is drained so the hub is never held up.
                for _ in rx.iter() {}
                return;
            }
        }
        // The hub let go: the stream stopped, the app left, or the session ended.
        self.end(Instant::now());
    }

    fn picture(&mut self, data: &[u8], keyframe: bool, width: u32, height: u32, at: Instant) -> std::io::Result<()> {
        let params = keyframe.then(|| ParameterSets::of(data)).flatten();
        // A new file where the picture's size or its parameter sets change (a display change).
        let changed = self.file.as_ref().is_some_and(|f| {
            f.video.size() != (width, height) || params.as_ref().is_some_and(|p| *p != f.params)
        });
        if changed {
            self.end(at);
        }
        if self.file.is_none() {
            // A file starts at a keyframe, which carries the parameter sets.
            let Some(params) = params else { return Ok(()) };
            self.begin(width, height, params, at)?;
        }
        let file = self.file.as_mut().expect("a file is open");
        let before = file.video.bytes();
        file.video.push(data, keyframe, at.saturating_duration_since(file.started))?;
        self.desk.metrics().recording_bytes.inc_by(file.video.bytes() - before);
        Ok(())
    }

    fn begin(&mut self, width: u32, height: u32, params: ParameterSets, at: Instant) -> std::io::Result<()> {
        let id = self
            .runtime
            .block_on(self.desk.recording_started(self.session, width, height))
            .map_err(std::io::Error::other)?;
        let video = private_file(&video_path(&self.dir, id))?;
        let log = BufWriter::new(private_file(&log_path(&self.dir, id))?);
        let video = Mp4Writer::create(video, width, height, &params)?;
        self.desk.metrics().recordings_started.inc();
        self.desk.metrics().recording_bytes.inc_by(video.bytes());
        self.file = Some(Segment { id, video, log, params, started: at });
        tracing::info!(session = %self.session, recording = id, width, height, "recording the session");
        let context: Vec<(&'static str, String)> = self.context.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (kind, text) in context {
            self.write_line(kind, text, at)?;
        }
        Ok(())
    }

    fn log(&mut self, kind: &'static str, text: String, at: Instant) -> std::io::Result<()> {
        if super::STATE_KINDS.contains(&kind) {
            self.context.insert(kind, text.clone());
        }
        self.write_line(kind, text, at)
    }

    fn write_line(&mut self, kind: &'static str, text: String, at: Instant) -> std::io::Result<()> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        let t_ms = at.saturating_duration_since(file.started).as_millis() as u64;
        let line = serde_json::to_string(&LogLine { t_ms, kind: kind.into(), text }).map_err(std::io::Error::other)?;
        writeln!(file.log, "{line}")?;
        // Log lines are few: each is on disk at once, like the pictures' fragments.
        file.log.flush()
    }

    /// Finishes the file being written, if any, and records its length.
    fn end(&mut self, at: Instant) {
        let Some(mut file) = self.file.take() else { return };
        let shown_until = at.saturating_duration_since(file.started);
        let result = file.log.flush().and_then(|()| file.video.finish(shown_until));
        let (duration, bytes) = match result {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(session = %self.session, recording = file.id, error = %e, "cannot finish a recording");
                (shown_until, 0)
            }
        };
        tracing::info!(session = %self.session, recording = file.id, ?duration, bytes, "recording ended");
        self.runtime.block_on(self.desk.recording_finished(file.id, duration, bytes));
    }
}

/// A new file readable by its owner only (recordings show the end user's screen).
fn private_file(path: &std::path::Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
