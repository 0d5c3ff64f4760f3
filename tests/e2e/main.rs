//! End-to-end tests: the real binaries against throwaway instances.

mod harness;

mod aliases;
mod delivery;
mod durability;
mod root;
mod sendmail;
