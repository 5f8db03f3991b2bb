//! The processes a run measures: their CPU and memory from /proc, the open-file limit
//! they inherit, and this bench binary started again as another of them.

pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or("", |x| x.1)
        .split(' ')
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Raises the open-file limit for 30,000 sockets: to 200,000 where the process may (as
/// root), else to the hard limit. The servers and the generator inherit it.
pub fn raise_fd_limit() {
    // SAFETY: plain libc calls on a stack struct.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            let wanted = libc::rlimit {
                rlim_cur: rl.rlim_max.max(200_000),
                rlim_max: rl.rlim_max.max(200_000),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                rl.rlim_cur = rl.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            }
        }
    }
}

/// This bench binary as another process, on `core` if given (`taskset`).
pub fn this_bench(core: Option<usize>) -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    match core {
        Some(c) => {
            let mut cmd = std::process::Command::new("taskset");
            cmd.args(["-c", &c.to_string()]).arg(exe);
            cmd
        }
        None => std::process::Command::new(exe),
    }
}
