//! Session recordings (DESIGN §9): a channel setting records its remote sessions; the consent
//! popup says so before the end user chooses. The relay writes what the app sent, unchanged,
//! into fragmented MP4 files a browser plays ([`mp4`]), with a timed log of consent, control,
//! input, chat and clipboard beside each. A file is cut where the picture's size or parameter
//! sets change (a display change) and where the stream stops (consent withdrawn, the app
//! gone, a relay restart): each is one row of `recordings` and two files in the recordings
//! directory, `<id>.mp4` and `<id>.log` (JSON lines). Only the channel's members and admins
//! may list and fetch them; each fetch of a video is audited; the expiry sweep deletes those
//! past their channel's retention.

pub mod mp4;
mod recorder;

pub use recorder::Recorder;

use crate::desk::{Desk, history_session};
use crate::error::Error;
use crate::store::{self, RecordingRow, TechnicianRow};
use deskline_api::{RecordingLogLine, RecordingView};
use deskline_protocol::SessionId;
use deskline_protocol::session::{Actor, AuditAction, AuditEvent};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory under the data directory where recordings are written.
pub const DIR: &str = "recordings";

/// Kinds of log line that describe a state rather than an event: the last of each is repeated
/// at the head of every new file, so each file's log stands on its own.
const STATE_KINDS: [&str; 2] = ["consent", "control"];

/// A line of a recording's log, as stored (one JSON object per line).
type LogLine = RecordingLogLine;

fn video_path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("{id}.mp4"))
}

fn log_path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("{id}.log"))
}

impl Desk {
    /// Does the session's channel record its remote sessions (and can this relay write
    /// recordings)?
    pub async fn records(&self, id: SessionId) -> bool {
        if self.recordings_dir().is_none() {
            return false;
        }
        let records = self
            .db()
            .read(move |tx| {
                let Some(row) = store::session_by_id(tx, id)? else { return Ok::<_, Error>(false) };
                Ok(store::channel_by_id(tx, row.core.channel)?.is_some_and(|c| c.record_sessions))
            })
            .await;
        records.unwrap_or(false)
    }

    /// A recording file begins: its row, and an audit event. Consoles showing the session
    /// hear of it.
    async fn recording_started(&self, session: SessionId, width: u32, height: u32) -> Result<i64, Error> {
        let now = self.now();
        let node = self.node_id().to_owned();
        let (id, row) = self
            .db()
            .write(move |tx| {
                let row = store::session_by_id(tx, session)?.ok_or(Error::NotFound("session"))?;
                let id = store::insert_recording(tx, session, now, width, height, &node)?;
                let state = row.core.state;
                let action = AuditAction::RecordingStarted { recording: id, width, height };
                let event = AuditEvent { session, at: now, actor: Actor::System, action, from: Some(state), to: state };
                store::insert_audit_event(tx, &event)?;
                Ok::<_, Error>((id, row))
            })
            .await?;
        self.announce(None, &row);
        Ok(id)
    }

    /// A recording file is complete. Consoles showing its session hear of it.
    async fn recording_finished(&self, id: i64, duration: Duration, bytes: u64) {
        let now = self.now();
        let (duration_ms, bytes) = (duration.as_millis() as i64, i64::try_from(bytes).unwrap_or(i64::MAX));
        let written = self
            .db()
            .write(move |tx| {
                store::finish_recording(tx, id, now, duration_ms, bytes)?;
                let Some(recording) = store::recording_by_id(tx, id)? else { return Ok::<_, Error>(None) };
                Ok(store::session_by_id(tx, recording.session)?)
            })
            .await;
        match written {
            Ok(Some(row)) => self.announce(None, &row),
            Ok(None) => {}
            Err(e) => tracing::error!(recording = id, error = %e, "cannot record the end of a recording"),
        }
    }

    /// A session's recordings, for its channel's members and admins.
    pub async fn recordings(&self, actor: &TechnicianRow, session: SessionId) -> Result<Vec<RecordingView>, Error> {
        let actor = actor.clone();
        self.db()
            .read(move |tx| {
                history_session(tx, &actor, session)?;
                Ok(store::recordings_of(tx, session)?.iter().map(crate::views::recording).collect())
            })
            .await
    }

    /// A recording the technician may watch (its channel's members and admins; to others it
    /// does not exist).
    async fn visible_recording(&self, actor: &TechnicianRow, id: i64) -> Result<(RecordingRow, PathBuf), Error> {
        let dir = self.recordings_dir().ok_or(Error::NotFound("recording"))?.to_path_buf();
        let actor = actor.clone();
        let row = self
            .db()
            .read(move |tx| {
                let recording = store::recording_by_id(tx, id)?.ok_or(Error::NotFound("recording"))?;
                history_session(tx, &actor, recording.session).map_err(|e| match e {
                    Error::NotFound(_) => Error::NotFound("recording"),
                    other => other,
                })?;
                Ok::<_, Error>(recording)
            })
            .await?;
        Ok((row, dir))
    }

    /// Opens a recording's video to send to a technician who may watch it; the viewing is
    /// audited before a byte is sent.
    pub async fn open_recording(&self, actor: &TechnicianRow, id: i64) -> Result<(RecordingRow, tokio::fs::File), Error> {
        let (row, dir) = self.visible_recording(actor, id).await?;
        let file = tokio::fs::File::open(video_path(&dir, id)).await.map_err(|e| {
            tracing::error!(recording = id, error = %e, "a recording's video is missing");
            Error::NotFound("recording")
        })?;
        let (now, technician, session) = (self.now(), actor.id, row.session);
        self.db()
            .write(move |tx| {
                let state = store::session_by_id(tx, session)?.ok_or(Error::NotFound("recording"))?.core.state;
                let action = AuditAction::RecordingViewed { recording: id };
                let event = AuditEvent { session, at: now, actor: Actor::Technician(technician), action, from: Some(state), to: state };
                Ok::<_, Error>(store::insert_audit_event(tx, &event)?)
            })
            .await?;
        Ok((row, file))
    }

    /// A recording's timed log.
    pub async fn recording_log(&self, actor: &TechnicianRow, id: i64) -> Result<Vec<RecordingLogLine>, Error> {
        let (_, dir) = self.visible_recording(actor, id).await?;
        let text = match tokio::fs::read_to_string(log_path(&dir, id)).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::Internal(format!("reading a recording's log: {e}"))),
        };
        // A line cut short by a relay killed mid-write is left out.
        Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
    }

    /// At start: recordings the relay was writing when it stopped get their length from what
    /// reached the disk (the files play up to their last whole picture). Several relay nodes:
    /// those another live node is writing are its own, and a file on another machine is left
    /// to the node that starts there.
    pub fn close_unfinished_recordings_blocking(&self) -> Result<(), Error> {
        let Some(dir) = self.recordings_dir().map(Path::to_path_buf) else { return Ok(()) };
        let now = self.now();
        let (alive_since, shared) = (self.others_alive_since(), self.db().is_postgres());
        self.db().write_blocking(move |tx| {
            for r in store::unfinished_recordings(tx)? {
                let path = video_path(&dir, r.id);
                let written_elsewhere = match &r.node {
                    Some(n) => store::live_node(tx, n, alive_since)?.is_some(),
                    None => false,
                };
                if written_elsewhere || (shared && !path.exists()) {
                    continue;
                }
                let bytes = std::fs::metadata(&path).map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX));
                let duration_ms = std::fs::File::open(&path).map_or(0, |f| mp4::whole_duration_ms(std::io::BufReader::new(f)));
                let ended = r.started_at.saturating_add(Duration::from_millis(duration_ms as u64)).min(now);
                store::finish_recording(tx, r.id, ended, duration_ms, bytes)?;
                tracing::info!(recording = r.id, duration_ms, "a recording cut short by a stop was closed");
            }
            Ok::<_, Error>(())
        })
    }

    /// Deletes the recordings past their channel's retention (files, then rows; audited).
    pub(crate) async fn delete_old_recordings(&self) -> Result<(), Error> {
        let Some(dir) = self.recordings_dir().map(Path::to_path_buf) else { return Ok(()) };
        let now = self.now();
        let (own, alive_since) = (self.node_id().to_owned(), self.others_alive_since());
        let old = self
            .db()
            .read(move |tx| {
                // Several relay nodes: a live node deletes the files it wrote (they are in its data
                // directory); those of a node that is gone go with their rows.
                let mut old = Vec::new();
                for r in store::recordings_past_retention(tx, now)? {
                    let theirs = match &r.node {
                        Some(n) if *n != own => store::live_node(tx, n, alive_since)?.is_some(),
                        _ => false,
                    };
                    if !theirs {
                        old.push(r);
                    }
                }
                Ok::<_, Error>(old)
            })
            .await?;
        'recordings: for r in old {
            for path in [video_path(&dir, r.id), log_path(&dir, r.id)] {
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        // Kept, and tried again at the next sweep.
                        tracing::error!(recording = r.id, path = %path.display(), error = %e, "cannot delete an old recording");
                        continue 'recordings;
                    }
                }
            }
            self.db()
                .write(move |tx| {
                    let state = store::session_by_id(tx, r.session)?.ok_or(Error::NotFound("session"))?.core.state;
                    store::delete_recording(tx, r.id)?;
                    let action = AuditAction::RecordingDeleted { recording: r.id };
                    let event = AuditEvent { session: r.session, at: now, actor: Actor::System, action, from: Some(state), to: state };
                    Ok::<_, Error>(store::insert_audit_event(tx, &event)?)
                })
                .await?;
            tracing::info!(recording = r.id, session = %r.session, "deleted a recording past its channel's retention");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::desk::{ChannelPatch, NewTechnician};
    use crate::store::{Db, Role};
    use deskline_protocol::session::SessionKind;
    use deskline_protocol::{ChannelId, Timestamp};
    use std::sync::Arc;

    const DAY: Duration = Duration::from_secs(86_400);

    struct Bench {
        desk: Desk,
        clock: ManualClock,
        owner: TechnicianRow,
        dir: PathBuf,
        _tmp: tempfile::TempDir,
    }

    async fn bench() -> Bench {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let db = Db::for_tests(tmp.path()).expect("the database");
        let clock = ManualClock::new(Timestamp(1_800_000_000_000));
        let desk = Desk::new(db, Arc::new(clock.clone()), "https://desk.example".into());
        desk.ensure_default_channel_blocking().expect("the default channel");
        let dir = tmp.path().join(DIR);
        std::fs::create_dir(&dir).expect("the recordings directory");
        desk.set_recordings_dir(dir.clone());
        let new = NewTechnician { username: "ada".into(), display_name: "Ada".into(), password: "correct horse battery".into(), role: Role::Admin, one_time: false };
        desk.create_technician(None, new).await.expect("an admin");
        let token = desk.login("ada".into(), "correct horse battery".into(), None, None).await.expect("login").0;
        let owner = desk.authenticate(&token).await.expect("signed in");
        Bench { desk, clock, owner, dir, _tmp: tmp }
    }

    impl Bench {
        /// A finished recording of a new session in `channel`, with its two files.
        async fn recording(&self, channel: ChannelId) -> (SessionId, i64) {
            let session = self.desk.create_session(&self.owner, channel, SessionKind::Pin, None).await.expect("a session");
            let session = SessionId(session.id);
            let id = self.desk.recording_started(session, 320, 240).await.expect("started");
            std::fs::write(video_path(&self.dir, id), b"video").expect("video");
            std::fs::write(log_path(&self.dir, id), b"").expect("log");
            self.desk.recording_finished(id, Duration::from_secs(1), 5).await;
            (session, id)
        }

        async fn ids(&self, session: SessionId) -> Vec<i64> {
            self.desk.recordings(&self.owner, session).await.expect("listed").iter().map(|r| r.id).collect()
        }
    }

    #[tokio::test]
    async fn the_sweep_deletes_recordings_past_their_channels_retention_only() {
        let b = bench().await;
        let keep = ChannelPatch { recording_retention_days: Some(0), ..ChannelPatch::default() };
        let archive = b.desk.create_channel(&b.owner, "archive".into(), keep).await.expect("a channel that keeps recordings");
        let (short, short_id) = b.recording(ChannelId(1)).await;
        let (kept, kept_id) = b.recording(ChannelId(archive.id)).await;

        b.clock.advance(29 * DAY);
        b.desk.sweep().await.expect("swept");
        assert_eq!((b.ids(short).await, b.ids(kept).await), (vec![short_id], vec![kept_id]), "30 days by default");

        b.clock.advance(DAY + Duration::from_secs(1));
        b.desk.sweep().await.expect("swept");
        assert_eq!((b.ids(short).await, b.ids(kept).await), (vec![], vec![kept_id]), "past 30 days: gone; 0 days: kept");
        assert!(!video_path(&b.dir, short_id).exists() && !log_path(&b.dir, short_id).exists(), "its files are deleted");
        assert!(video_path(&b.dir, kept_id).exists());
        let trail = b.desk.session_events(&b.owner, short).await.expect("trail");
        let deleted = trail.iter().filter(|e| matches!(e.action, AuditAction::RecordingDeleted { recording } if recording == short_id)).count();
        assert_eq!(deleted, 1, "the deletion is audited");
        let err = b.desk.recording_log(&b.owner, short_id).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    }

    /// Several relay nodes (PostgreSQL), sharing even the recordings' directory: a node that
    /// starts closes the recordings a node that is gone left unfinished, never one a live node
    /// is writing (that node finishes it with its own length).
    #[tokio::test]
    #[ignore = "needs PostgreSQL: scripts/with-postgres.sh runs it"]
    async fn a_node_starting_closes_only_the_recordings_of_nodes_that_are_gone() {
        let b = bench().await;
        assert!(b.desk.db().is_postgres(), "run it through scripts/with-postgres.sh");
        let node = |quic: &str| {
            let desk = Desk::new(b.desk.db().clone(), Arc::new(b.clock.clone()), "https://desk.example".into());
            desk.set_recordings_dir(b.dir.clone());
            desk.set_quic_endpoint(crate::desk::QuicEndpoint { quic: quic.into(), fingerprint: "ab".into() });
            desk
        };
        let live = node("127.0.0.1:4433");
        live.join_nodes().await.expect("joined");
        let gone = node("127.0.0.1:4434");
        let mut recordings = Vec::new();
        for desk in [&live, &gone] {
            let session = b.desk.create_session(&b.owner, ChannelId(1), SessionKind::Pin, None).await.expect("a session");
            let session = SessionId(session.id);
            let id = desk.recording_started(session, 320, 240).await.expect("started");
            std::fs::write(video_path(&b.dir, id), b"being written").expect("video");
            recordings.push(session);
        }
        // The node that wrote the second one never beat (as if it died before its first beat):
        // it is gone.
        let starting = node("127.0.0.1:4435");
        starting.close_unfinished_recordings_blocking().expect("closed");
        let ended = |shown: Vec<RecordingView>| shown[0].ended_at.is_some();
        assert!(!ended(b.desk.recordings(&b.owner, recordings[0]).await.expect("listed")), "the live node's recording is still being written");
        assert!(ended(b.desk.recordings(&b.owner, recordings[1]).await.expect("listed")), "the dead node's recording is closed");

        let writing = b.desk.recordings(&b.owner, recordings[0]).await.expect("listed")[0].id;
        live.recording_finished(writing, Duration::from_secs(5), 13).await;
        let shown = b.desk.recordings(&b.owner, recordings[0]).await.expect("listed");
        assert_eq!((shown[0].duration_ms, shown[0].bytes, shown[0].ended_at.is_some()), (5000, 13, true));
    }

    #[tokio::test]
    async fn a_recording_cut_short_by_a_stop_gets_the_length_of_what_reached_the_disk() {
        let b = bench().await;
        let session = b.desk.create_session(&b.owner, ChannelId(1), SessionKind::Pin, None).await.expect("a session");
        let id = b.desk.recording_started(SessionId(session.id), 320, 240).await.expect("started");
        // Three pictures written, the relay killed before it could finish the file: the last
        // picture waits for its duration and is lost with the header's total.
        let keyframe = [&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f][..], &[0, 0, 0, 1, 0x68, 0xce], &[0, 0, 1, 0x65, 0x88]].concat();
        let params = mp4::ParameterSets::of(&keyframe).expect("parameter sets");
        let file = std::fs::File::create(video_path(&b.dir, id)).expect("file");
        let mut writer = mp4::Mp4Writer::create(std::io::BufWriter::new(file), 320, 240, &params).expect("writer");
        for (i, at) in [0, 40, 90].into_iter().enumerate() {
            writer.push(if i == 0 { &keyframe } else { &[0, 0, 0, 1, 0x41, 0x9a] }, i == 0, Duration::from_millis(at)).expect("pushed");
        }
        drop(writer);
        b.desk.close_unfinished_recordings_blocking().expect("closed");
        let shown = b.desk.recordings(&b.owner, SessionId(session.id)).await.expect("listed");
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].duration_ms, 90, "the two whole pictures' length");
        assert!(shown[0].ended_at.is_some() && shown[0].bytes > 0, "{shown:?}");
    }
}
