//! The process's open-files limit against the connections it is asked to hold. Running
//! out of descriptors fails `accept` in a loop and, worse, the clock's state-file saves:
//! so the soft limit is raised to the hard one, and connections and streams are capped to
//! what then fits.

/// Descriptors the server keeps beside its connections: standard streams, listeners, each
/// thread's epoll and eventfd, the state file's saves, NATS, and a margin.
const RESERVED: usize = 64;

/// Descriptors per HTTP worker (and its writer thread) for their own use.
const PER_WORKER: usize = 4;

/// The streams (`max_clients`, possibly lowered), the connections each of `workers`
/// accepts at most, and, when `max_clients` was lowered, a note that says why.
pub(super) fn fit(max_clients: usize, workers: usize) -> (usize, usize, Option<String>) {
    let limit = raise_to_hard_limit();
    let connections = limit
        .saturating_sub(RESERVED + PER_WORKER * workers)
        .max(workers);
    // A quarter of the connections (up to 1,024) is kept for requests that are not
    // streams (the clock, /healthz, the map page), so a full house can still be run.
    let streams_fit = connections - (connections / 4).min(1024);
    let per_worker = connections.div_ceil(workers).max(1);
    if max_clients <= streams_fit {
        return (max_clients, per_worker, None);
    }
    let note = format!(
        "--max-clients lowered from {max_clients} to {streams_fit}: the open-files limit is \
         {limit} (raise it with `ulimit -n` or the service's LimitNOFILE)"
    );
    (streams_fit, per_worker, Some(note))
}

/// Raises the soft open-files limit to the hard one (capped by the kernel's
/// `fs.nr_open`), and returns the soft limit in force.
fn raise_to_hard_limit() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|t| t.trim().parse::<libc::rlim_t>().ok())
            .unwrap_or(1 << 20);
        let wanted = rl.rlim_max.min(nr_open);
        if rl.rlim_cur < wanted {
            let raised = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                rl.rlim_cur = wanted;
            }
        }
    }
    usize::try_from(rl.rlim_cur).unwrap_or(usize::MAX)
}
