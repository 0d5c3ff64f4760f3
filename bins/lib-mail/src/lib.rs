//! posthorn-mail - what several Posthorn programs know about mail:
//! the configuration file, addresses, aliases(5), the users file, dates.

#![forbid(unsafe_code)]

pub mod address;
pub mod addrlist;
pub mod aliases;
pub mod authconf;
pub mod config;
pub mod date;
pub mod net;
pub mod sieveconf;
pub mod users;

pub use config::Config;
