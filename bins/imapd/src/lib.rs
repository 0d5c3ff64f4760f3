//! posthorn-imapd - the IMAP server's parts, as a library only so that
//! the fuzz targets (fuzz/) can reach the command parser and the MIME
//! code; the program is main.rs. One module per concern: the wire
//! (serve), the state machine (session), the grammar (command), message
//! structure (mime, fetch, search), and the Maildir++ store Dovecot can
//! share (folder, folders, flags, uidlist, utf7).

#![forbid(unsafe_code)]

pub mod binary;
pub mod cache;
pub mod command;
pub mod context;
pub mod fetch;
pub mod flags;
pub mod folder;
pub mod folders;
pub mod listext;
pub mod listing;
pub mod messages;
pub mod mime;
pub mod modseq;
pub mod multiappend;
pub mod rev2;
pub mod search;
pub mod searchres;
pub mod serve;
pub mod session;
pub mod sort;
pub mod specialuse;
pub mod thread;
pub mod uidlist;
pub mod utf7;
pub mod watch;
