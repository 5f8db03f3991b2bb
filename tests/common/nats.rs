//! A real `nats-server -js` for the replica tests (Debian's; scripts/test.sh installs it).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `nats-server -js` on a free port of 127.0.0.1 with its own store; stopped when dropped.
pub struct Nats {
    child: Child,
    pub port: u16,
    store: PathBuf,
    /// More options of nats-server's (e.g. --user and --pass).
    extra: Vec<String>,
}

impl Nats {
    pub fn start(name: &str) -> Nats {
        Self::start_with(name, &[])
    }

    /// [`Nats::start`] with more options of nats-server's.
    pub fn start_with(name: &str, extra: &[&str]) -> Nats {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect(
                "nats-server is missing: apt-get install nats-server (scripts/test.sh does it)",
            );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = super::scratch_dir(&format!("nats_{name}"));
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let mut nats = Nats {
            child: spawn_nats(binary, port, &store, &extra),
            port,
            store,
            extra,
        };
        nats.wait_up();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.stop();
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap();
        self.child = spawn_nats(binary, self.port, &self.store, &self.extra);
        self.wait_up();
    }
}

fn spawn_nats(binary: &str, port: u16, store: &std::path::Path, extra: &[String]) -> Child {
    Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
