//! `nodejs12` … `nodejs20`: fcd's embedded bootstrap (`nodejs/bootstrap.js`) on the machine's
//! Node.js (`--node`), serving the custom-runtime contract for `exports.handler = (event,
//! context, callback)` functions. Every nodejs* name runs on the one Node the machine has; the
//! bootstrap reads `FC_RUNTIME_VERSION` for the few behaviours that differ between FC's Node
//! runtimes (what an async handler's returned value means).

use super::{Bootstrap, Interpreter, Launch, Placement, ProcessLaunch, Runtime, RuntimeOptions};

/// The Node.js bootstrap fcd ships inside its binary.
pub(crate) const BOOTSTRAP: &str = include_str!("nodejs/bootstrap.js");

#[derive(Debug)]
pub(crate) struct NodeJs {
    interpreter: Interpreter,
    bootstrap: Bootstrap,
}

impl NodeJs {
    pub(crate) fn detect(opts: &RuntimeOptions) -> Result<NodeJs, (String, String)> {
        let missing = |why: String| ("nodejs".to_owned(), why);
        let interpreter = Interpreter::probe(
            &opts.node,
            &[
                "-e",
                "const fs=require('fs'),path=require('path');require('crypto');require('zlib');const exe=fs.realpathSync(process.execPath);console.log(exe);console.log(path.dirname(path.dirname(exe)));console.log(process.versions.node);for(const l of fs.readFileSync('/proc/self/maps','utf8').split('\\n')){const i=l.indexOf(' /');if(i>=0)console.log(l.slice(i+1))}",
            ],
        )
        .map_err(missing)?;
        let bootstrap =
            Bootstrap::write(&opts.dir, "nodejs-bootstrap.js", BOOTSTRAP).map_err(missing)?;
        Ok(NodeJs {
            interpreter,
            bootstrap,
        })
    }
}

impl NodeJs {
    fn process_launch(&self, jailed: bool, memory_mb: u32) -> ProcessLaunch {
        let (script, bind) = self.bootstrap.place(jailed);
        let mut mounts = self.interpreter.mounts();
        mounts.extend(bind);
        // V8 sizes its heap from the machine, not from the instance's memory limit; cap the
        // old generation below memorySize so a heavy function gets a JavaScript heap error
        // (reported as the function's) before the cgroup's OOM kill (reported as a crash).
        let heap_mb = (u64::from(memory_mb) * 3 / 4).max(64);
        ProcessLaunch {
            program: self.interpreter.exe.clone(),
            args: vec![format!("--max-old-space-size={heap_mb}"), script],
            path_dirs: self.interpreter.bin_dir(),
            mounts,
            reads_assignment: true,
            image: None,
        }
    }
}

impl Runtime for NodeJs {
    fn names(&self) -> &'static [&'static str] {
        &["nodejs12", "nodejs14", "nodejs16", "nodejs18", "nodejs20"]
    }

    fn launch(&self, p: &Placement<'_>) -> Result<Launch, crate::StartError> {
        Ok(Launch::Process(
            self.process_launch(p.jailed, p.spec.function.memory_size),
        ))
    }

    fn blank_launch(&self, memory_mb: u32) -> Option<ProcessLaunch> {
        Some(self.process_launch(true, memory_mb))
    }

    fn describe(&self) -> String {
        format!(
            "Node.js {} ({})",
            self.interpreter.version,
            self.interpreter.exe.display()
        )
    }
}
