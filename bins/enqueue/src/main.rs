//! enqueue - put one message into the spool, durably, and wake qrun.
//!
//! Runs setgid to the spool group when installed, so it distrusts its
//! caller: the environment and `-C` are ignored unless the caller is root
//! or enqueue is not privileged at all; the umask is fixed; fds 0-2 are
//! made safe; stdin is a record stream (enqueue(8)) checked line by line
//! with caps on every length. It parses no mail headers and runs nothing.

#![forbid(unsafe_code)]

mod list;

use posthorn_mail::config::{Config, Source};
use posthorn_spool::envelope::{self, Envelope, ReadError};
use posthorn_spool::{Spool, qfile};
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::{fsio, info, privs};
use std::io::{BufReader, BufWriter, Seek, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: enqueue [-C file] [-p | -q]";

fn main() -> ExitCode {
    // Files we create are for the spool group only.
    fsio::harden(0o027);
    fsio::ignore_sigxfsz();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("enqueue: {e}");
            ExitCode::from(e.code)
        }
    }
}

/// What the command line asked for.
struct Args {
    config: Option<PathBuf>,
    list: bool,
    flush: bool,
}

/// parse_args - `-C FILE`, `-p` and `-q`; anything else is a usage error.
fn parse_args() -> Result<Args, Exit> {
    let mut a = Args {
        config: None,
        list: false,
        flush: false,
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-C") => {
                let f = it.next().ok_or_else(|| Exit::new(exit::USAGE, USAGE))?;
                a.config = Some(PathBuf::from(f));
            }
            Some("-p") => a.list = true,
            Some("-q") => a.flush = true,
            _ => {
                return Err(Exit::new(
                    exit::USAGE,
                    format!("unknown argument {arg:?}\n{USAGE}"),
                ));
            }
        }
    }
    Ok(a)
}

/// run - read, write, commit, wake; the exit code says whether it is stored.
fn run() -> Result<(), Exit> {
    let args = parse_args()?;
    // A setgid enqueue must not read a file the caller chose: that file
    // names the spool, and the caller could point it at any group-writable place.
    let trust = !privs::is_privileged() || privs::uid() == 0;
    let cfg = Config::load(&Source::choose(args.config.as_deref(), trust))?;
    posthorn_sys::log::init("enqueue", cfg.log == posthorn_mail::config::LogSink::Stderr);
    let spool = Spool::new(&cfg.spool);
    if args.list {
        return list::print(&spool);
    }
    if args.flush {
        // `sendmail -q` from a user who may not run the queue: ask the daemon.
        return if spool.flush() {
            Ok(())
        } else {
            Err(Exit::new(
                exit::UNAVAILABLE,
                "qrun is not running: start it, or run the queue as root",
            ))
        };
    }
    let stdin = std::io::stdin().lock();
    let mut input = BufReader::with_capacity(64 * 1024, stdin);
    let env = Envelope::read_records(&mut input).map_err(read_error)?;

    let arrival = posthorn_mail::date::unix_now();
    let (id, tmp_path, file) = spool.create_tmp(arrival).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Exit::new(
            exit::CANTCREAT,
            format!(
                "{}: no spool here (run qrun once, or make install)",
                spool.tmp().display()
            ),
        ),
        _ => Exit::from_io(
            format!("cannot create a file in {}", spool.tmp().display()),
            &e,
        ),
    })?;
    // From here on, any failure removes the half-written file.
    let cleanup = TmpGuard(Some(tmp_path.clone()));
    let uid = privs::uid();
    let mut w = BufWriter::with_capacity(64 * 1024, file);
    let io = |e: std::io::Error| Exit::from_io("writing the queue file", &e);
    qfile::write_header(&mut w, &id, arrival, uid, &env).map_err(io)?;
    w.flush().map_err(io)?;
    let msg_offset = w.get_mut().stream_position().map_err(io)?;
    let size =
        envelope::copy_chunks(&mut input, &mut w, cfg.message_size_limit).map_err(read_error)?;
    let mut file = w.into_inner().map_err(|e| io(e.into_error()))?;
    qfile::finish_size(&mut file, msg_offset, size).map_err(io)?;
    let id = spool
        .commit(&file, &tmp_path, id)
        .map_err(|e| Exit::from_io("committing the queue file", &e))?;
    cleanup.disarm();
    info!(
        "{id}: uid={uid} from=<{}>, size={size}, nrcpt={}",
        env.sender,
        env.recipients.len()
    );
    spool.wake();
    println!("{id}");
    Ok(())
}

/// read_error - a broken writer is a data error; a writer that died or a
/// full disk is temporary: in both cases nothing is stored.
fn read_error(e: ReadError) -> Exit {
    match &e {
        ReadError::Bad(_) => Exit::new(exit::DATAERR, e.to_string()),
        ReadError::TooBig(_) => Exit::new(exit::DATAERR, e.to_string()),
        ReadError::Io(io) => Exit::from_io("reading input", io),
    }
}

/// Removes a temporary file unless disarmed.
struct TmpGuard(Option<PathBuf>);

impl TmpGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}
