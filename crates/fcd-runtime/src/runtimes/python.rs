//! `python3`, `python3.9`, `python3.10`: fcd's embedded bootstrap (`python/bootstrap.py`) on the
//! machine's Python 3 (`--python`), serving the custom-runtime contract for `handler(event,
//! context)` functions.

use super::{Bootstrap, Interpreter, Launch, Placement, ProcessLaunch, Runtime, RuntimeOptions};

/// The Python bootstrap fcd ships inside its binary.
pub(crate) const BOOTSTRAP: &str = include_str!("python/bootstrap.py");

/// Prints the interpreter's real path, prefix and version, then every file it has mapped once
/// the extension modules functions commonly load are imported (their libraries may live
/// outside the system trees, and a jail shows only what is listed).
const PROBE: &str = r#"
import os, sys, platform
for m in ("ssl", "hashlib", "ctypes", "zlib", "bz2", "lzma", "_decimal", "sqlite3", "uuid", "select", "socket", "json", "_posixsubprocess", "readline"):
    try:
        __import__(m)
    except Exception:
        pass
print(os.path.realpath(sys.executable))
print(sys.base_prefix)
print(platform.python_version())
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            print(parts[5].rstrip())
"#;

#[derive(Debug)]
pub(crate) struct Python {
    interpreter: Interpreter,
    bootstrap: Bootstrap,
}

impl Python {
    pub(crate) fn detect(opts: &RuntimeOptions) -> Result<Python, (String, String)> {
        let missing = |why: String| ("python3".to_owned(), why);
        let interpreter = Interpreter::probe(&opts.python, &["-c", PROBE]).map_err(missing)?;
        if !interpreter.version.starts_with("3.") {
            return Err(missing(format!(
                "`{}` is Python {}, not 3",
                opts.python, interpreter.version
            )));
        }
        let bootstrap =
            Bootstrap::write(&opts.dir, "python-bootstrap.py", BOOTSTRAP).map_err(missing)?;
        Ok(Python {
            interpreter,
            bootstrap,
        })
    }
}

impl Python {
    fn process_launch(&self, jailed: bool) -> ProcessLaunch {
        let (script, bind) = self.bootstrap.place(jailed);
        let mut mounts = self.interpreter.mounts();
        mounts.extend(bind);
        ProcessLaunch {
            program: self.interpreter.exe.clone(),
            args: vec!["-u".into(), "-X".into(), "utf8".into(), script],
            path_dirs: self.interpreter.bin_dir(),
            mounts,
            reads_assignment: true,
            image: None,
        }
    }
}

impl Runtime for Python {
    fn names(&self) -> &'static [&'static str] {
        &["python3", "python3.9", "python3.10"]
    }

    fn launch(&self, p: &Placement<'_>) -> Result<Launch, crate::StartError> {
        Ok(Launch::Process(self.process_launch(p.jailed)))
    }

    fn blank_launch(&self, _memory_mb: u32) -> Option<ProcessLaunch> {
        Some(self.process_launch(true))
    }

    fn describe(&self) -> String {
        format!(
            "Python {} ({})",
            self.interpreter.version,
            self.interpreter.exe.display()
        )
    }
}
