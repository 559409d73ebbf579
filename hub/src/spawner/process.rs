//! What the hub can see of a server's process without privileges: its
//! entry in /proc (readable for every process unless /proc is mounted with
//! `hidepid`), and a free port for a new server.

use std::net::{Ipv4Addr, TcpListener};

/// A process as /proc shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    /// Start time in clock ticks after boot (field 22 of /proc/PID/stat).
    pub start_time: i64,
    /// Whether it exited and waits to be reaped (state `Z`) or is dead
    /// (`X`): it runs no more.
    pub exited: bool,
}

/// Reads /proc/`pid`/stat; `None` when there is no such process (or
/// /proc hides it).
pub fn proc_info(pid: i64) -> Option<ProcInfo> {
    if pid <= 1 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Parses a /proc/PID/stat line. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses: the fields
/// after it start after the last `)`.
fn parse_stat(stat: &str) -> Option<ProcInfo> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest starts at field 3 (state): field N is fields[N - 3].
    let state = *fields.first()?;
    let start_time = fields.get(22 - 3)?.parse().ok()?;
    Some(ProcInfo {
        start_time,
        exited: matches!(state, "Z" | "X" | "x"),
    })
}

/// What /proc says of the process a server was started as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It runs, and it is the process the hub started.
    Running,
    /// It is gone: no such process, it exited, or its PID now belongs to
    /// another process (another start time).
    Gone,
    /// /proc does not show it (hidepid): only a signal can tell.
    Unknown,
}

/// Whether the process `pid`, started at `start_time` (if known), still
/// runs.
pub fn liveness(pid: i64, start_time: Option<i64>) -> Liveness {
    match proc_info(pid) {
        Some(p) if p.exited => Liveness::Gone,
        Some(p) => match start_time {
            Some(t) if t != p.start_time => Liveness::Gone,
            _ => Liveness::Running,
        },
        None if proc_visible() => Liveness::Gone,
        None => Liveness::Unknown,
    }
}

/// Whether this process sees every process in /proc (PID 1 is always
/// there unless /proc hides other users' processes).
fn proc_visible() -> bool {
    std::path::Path::new("/proc/1/stat").exists()
}

/// A port on 127.0.0.1 that nothing listens on now (the kernel's pick).
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let p = parse_stat(line).expect("parsed");
        assert_eq!(p.start_time, 987654);
        assert!(!p.exited);
        let zombie = line.replace(") S 1", ") Z 1");
        assert!(parse_stat(&zombie).expect("parsed").exited);
        assert_eq!(parse_stat("12 (x"), None);
    }

    #[test]
    fn own_process_is_running_and_a_reused_pid_is_not() {
        let me = i64::from(std::process::id());
        let info = proc_info(me).expect("own /proc entry");
        assert_eq!(liveness(me, Some(info.start_time)), Liveness::Running);
        assert_eq!(liveness(me, None), Liveness::Running);
        assert_eq!(liveness(me, Some(info.start_time + 1)), Liveness::Gone);
        assert_eq!(liveness(i64::from(i32::MAX), None), Liveness::Gone);
    }

    #[test]
    fn free_ports_are_free() {
        let p = free_port().expect("port");
        assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok());
    }
}
