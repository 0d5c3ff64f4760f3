//! sendmail - the sendmail-compatible submission command.
//!
//! Runs as the caller, unprivileged: it parses options and headers, then
//! pipes an envelope and the message to `enqueue`, the only program that
//! writes the spool. Called as `mailq`, `newaliases` or `runq` it behaves
//! as `sendmail -bp`, `-bi` or `-q`.

#![forbid(unsafe_code)]

mod args;
mod message;
mod submit;

use args::Mode;
use posthorn_mail::config::{Config, Source};
use posthorn_sys::exit::{self, Exit};
use std::process::ExitCode;

fn main() -> ExitCode {
    posthorn_sys::fsio::harden(0o022);
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mode = match name.as_str() {
        "mailq" => Mode::List,
        "newaliases" => Mode::Aliases,
        "runq" => Mode::RunQueue,
        _ => Mode::Deliver,
    };
    match run(mode, argv.collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("sendmail: {e}");
            }
            ExitCode::from(e.code)
        }
    }
}

/// run - parse, load the configuration, and do what the mode says.
fn run(mode: Mode, argv: Vec<std::ffi::OsString>) -> Result<(), Exit> {
    let a = args::parse(mode, argv)
        .map_err(|m| Exit::new(exit::USAGE, format!("{m}\n{}", args::USAGE)))?;
    let cfg = Config::load(&Source::choose(a.config.as_deref(), true))?;
    posthorn_sys::log::init(
        "sendmail",
        cfg.log == posthorn_mail::config::LogSink::Stderr,
    );
    match a.mode {
        Mode::Deliver => submit::deliver(&cfg, &a),
        Mode::List => submit::exec_helper(&cfg, "enqueue", &["-p"]),
        Mode::RunQueue => {
            // Who may work on the spool runs the queue; anyone else asks the daemon.
            let state = posthorn_spool::Spool::new(&cfg.spool).state();
            if nix::unistd::access(&state, nix::unistd::AccessFlags::W_OK).is_ok()
                || posthorn_sys::privs::uid() == 0
            {
                match &a.queue_only {
                    Some(args::QueueOnly::Id(id)) => {
                        submit::exec_helper(&cfg, "qrun", &["-i", id.as_str()])
                    }
                    Some(args::QueueOnly::Domain(d)) => {
                        submit::exec_helper(&cfg, "qrun", &["-d", d.as_str()])
                    }
                    None => submit::exec_helper(&cfg, "qrun", &["-o"]),
                }
            } else {
                submit::exec_helper(&cfg, "enqueue", &["-q"])
            }
        }
        Mode::Verify => {
            let mut v: Vec<&str> = vec!["--verify"];
            v.extend(a.recipients.iter().map(String::as_str));
            if a.recipients.is_empty() {
                return Err(Exit::new(exit::USAGE, "-bv needs at least one recipient"));
            }
            submit::exec_helper(&cfg, "qrun", &v)
        }
        Mode::Aliases => check_aliases(&cfg, a.verbose),
        // SMTP on stdin/stdout, as the calling user: smtpd's local mode.
        Mode::Smtp => submit::exec_helper(&cfg, "smtpd", &["--local"]),
        Mode::Daemon => Err(Exit::new(
            exit::UNAVAILABLE,
            "no daemon mode: run qrun for the queue and smtpd from inetd or systemd",
        )),
    }
}

/// check_aliases - `newaliases`: there is no database to build (the text is
/// read directly), so check the file and report problems by file and line.
fn check_aliases(cfg: &Config, verbose: bool) -> Result<(), Exit> {
    let Some(path) = &cfg.aliases else {
        return Err(Exit::new(exit::CONFIG, "no aliases file is configured"));
    };
    let al = posthorn_mail::aliases::Aliases::load(path)
        .map_err(|e| Exit::from_io(format!("{}: cannot read", path.display()), &e))?;
    let mut problems: Vec<String> = al.problems.iter().map(|p| p.to_string()).collect();
    problems.extend(check_includes(&al));
    for p in &problems {
        eprintln!("newaliases: {p}");
    }
    if verbose || problems.is_empty() {
        println!("{}: {} aliases", path.display(), al.len());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Exit::new(exit::DATAERR, ""))
    }
}

/// check_includes - every :include: file must be readable and well-formed.
fn check_includes(al: &posthorn_mail::aliases::Aliases) -> Vec<String> {
    use posthorn_mail::aliases::{Value, parse_values};
    let mut out = Vec::new();
    for (n, values) in al.iter() {
        for v in values {
            if let Value::Include(p) = v {
                match std::fs::read_to_string(p) {
                    Ok(t) => {
                        for (i, l) in t.lines().enumerate() {
                            if l.trim().is_empty() || l.trim_start().starts_with('#') {
                                continue;
                            }
                            if let Err(m) = parse_values(l) {
                                out.push(format!("{}:{}: {m}", p.display(), i + 1));
                            }
                        }
                    }
                    Err(e) => out.push(format!(
                        "{}: alias \"{n}\": cannot read :include: file: {e}",
                        p.display()
                    )),
                }
            }
        }
    }
    out
}
