//! The processes of a benchmark: the sandbox and the gateway each run in a child process of
//! this binary (so each side's CPU time is its own), and CPU time read from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

/// A command the gateway child runs under (words split at spaces), for counting its
/// instructions: `valgrind --tool=callgrind --instr-atstart=no …`, switched on for the
/// gateway's round with `callgrind_control -i on PID` (see `bench/README.md`).
pub(crate) const WRAP_ENV: &str = "DCI_BENCH_WRAP_GATEWAY";

/// A child process that printed one line (its address) and runs until dropped.
pub(crate) struct ChildProc {
    child: Child,
    /// The first line it printed.
    pub(crate) line: String,
}

impl ChildProc {
    /// Starts `dci-bench <args>` with `envs`, waits for its first line of output. With
    /// [`WRAP_ENV`] set, a `child-gateway` runs under the command it names.
    pub(crate) fn start(args: &[&str], envs: &[(&str, &str)]) -> Result<ChildProc> {
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let wrap = std::env::var(WRAP_ENV)
            .ok()
            .filter(|w| !w.trim().is_empty());
        let mut cmd = match wrap.as_deref() {
            Some(w) if args.first() == Some(&"child-gateway") => {
                let mut words = w.split_whitespace();
                let mut cmd = Command::new(words.next().unwrap_or_default());
                cmd.args(words).arg(exe);
                cmd
            }
            _ => Command::new(exe),
        };
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("starting a child process")?;
        let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .context("reading the child's address")?;
        if line.trim().is_empty() {
            return Err(anyhow!("child {args:?} printed nothing"));
        }
        Ok(ChildProc {
            child,
            line: line.trim().to_owned(),
        })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pins every thread of process `pid` (and the threads it starts later) to CPU `cpu`, with
/// `taskset -a -c -p`.
fn pin_to_cpu(pid: u32, cpu: usize) -> Result<()> {
    let cores = online_cpus();
    if cpu >= cores {
        return Err(anyhow!(
            "--pin needs at least {} CPUs; this machine has {cores}: run without --pin",
            cpu + 1
        ));
    }
    util_linux(
        "taskset",
        &["-a", "-c", "-p", &cpu.to_string(), &pid.to_string()],
        "--pin",
        &format!("pin process {pid} to CPU {cpu}"),
    )
}

/// Puts every thread of this process under `SCHED_BATCH` (`chrt -b -a -p 0`; the threads
/// and processes it starts afterwards inherit the policy).
pub(crate) fn batch_self() -> Result<()> {
    let pid = std::process::id();
    util_linux(
        "chrt",
        &["-b", "-a", "-p", "0", &pid.to_string()],
        "--batch",
        &format!("set SCHED_BATCH on process {pid}"),
    )
}

/// Runs a util-linux `tool` with `args` to `what` (for the option `flag`), its refusal an
/// error.
fn util_linux(tool: &str, args: &[&str], flag: &str, what: &str) -> Result<()> {
    let out = Command::new(tool).args(args).output().with_context(|| {
        format!("running {tool} (util-linux) to {what}: install it or run without {flag}")
    })?;
    if !out.status.success() {
        return Err(anyhow!(
            "{tool} could not {what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The environment variable that tells a bench process (this one or a child) which CPU to pin
/// itself to before it starts its runtime.
pub(crate) const PIN_ENV: &str = "DCI_BENCH_CPU";

/// Pins this process to CPU `cpu` before its tokio runtime exists, so that the runtime sees
/// one CPU and starts one worker, as a program given one core would. Pinning after the start
/// left two workers taking turns on one core (extra context switches on both sides).
pub(crate) fn pin_self(cpu: usize) -> Result<()> {
    pin_to_cpu(std::process::id(), cpu)
}

/// CPUs online on the machine (`/sys/devices/system/cpu/online`), whatever this process's
/// affinity: a child started pinned still knows how many there are.
pub(crate) fn online_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| {
            s.trim().split(',').try_fold(0usize, |n, range| {
                let (a, b) = match range.split_once('-') {
                    Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
                    None => {
                        let a = range.parse::<usize>().ok()?;
                        (a, a)
                    }
                };
                Some(n + b.checked_sub(a)? + 1)
            })
        })
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Seconds since boot (`/proc/uptime`, 10 ms steps): the clock of `perf record -k boottime`.
pub(crate) fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A round's window, printed to stderr when marks were asked for (`--marks`).
pub(crate) struct Mark(Option<f64>);

impl Mark {
    pub(crate) fn start(on: bool) -> Mark {
        Mark(on.then(uptime))
    }

    pub(crate) fn end(self, side: &str, connections: usize) {
        if let Some(start) = self.0 {
            eprintln!("round {side} {connections} {start:.2} {:.2}", uptime());
        }
    }
}

/// Ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, 100 when unknown).
pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// User + system CPU time of process `pid` (`self` for this one) so far.
pub(crate) fn cpu_time(pid: &str, ticks: f64) -> Duration {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
    Duration::from_secs_f64((t(11) + t(12)) / ticks)
}
