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
use posthorn_spool::Spool;
use posthorn_spool::envelope::{self, Envelope, ReadError};
use posthorn_spool::layout::StoreError;
use posthorn_sys::exit::{self, Exit};
use posthorn_sys::{fsio, info, privs};
use std::io::{BufReader, Write};
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

    let arrival = posthorn_mail::date::since_epoch();
    let uid = privs::uid();
    let mut size = 0;
    let id = spool
        .store(&env, uid, arrival, |id, w| {
            // The ID now, before the message: smtpd puts it in Received:.
            // Exit 0 is what says the message was committed under it.
            let mut out = std::io::stdout().lock();
            writeln!(out, "{id}")
                .and_then(|()| out.flush())
                .map_err(ReadError::Io)?;
            size = envelope::copy_chunks(&mut input, w, cfg.message_size_limit)?;
            Ok(size)
        })
        .map_err(|e| match e {
            StoreError::Body(r) => read_error(r),
            StoreError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => Exit::new(
                exit::CANTCREAT,
                format!(
                    "{}: no spool here (run qrun once, or make install)",
                    spool.tmp().display()
                ),
            ),
            StoreError::Io(e) => Exit::from_io(
                format!("writing the queue file in {}", spool.root.display()),
                &e,
            ),
        })?;
    info!(
        "{id}: uid={uid} from=<{}>, size={size}, nrcpt={}",
        env.sender,
        env.recipients.len()
    );
    spool.wake();
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
