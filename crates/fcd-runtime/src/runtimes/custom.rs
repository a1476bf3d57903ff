//! `custom` and `custom.debian10`: the function brings its own HTTP server, started from
//! `customRuntimeConfig.command` + `args`, or from `bootstrap` in the code package.

use std::path::{Path, PathBuf};

use super::{Launch, Placement, ProcessLaunch, Runtime};

#[derive(Debug)]
pub(crate) struct Custom;

impl Runtime for Custom {
    fn names(&self) -> &'static [&'static str] {
        &["custom", "custom.debian10"]
    }

    fn launch(&self, p: &Placement<'_>) -> Result<Launch, crate::StartError> {
        let crc = p
            .spec
            .function
            .custom_runtime_config
            .clone()
            .unwrap_or_default();
        let (program, args) = match crc.command.split_first() {
            Some((cmd, rest)) => {
                let mut args: Vec<String> = rest.to_vec();
                args.extend(crc.args.iter().cloned());
                (code_path(p.code_root, cmd), args)
            }
            None => (p.code_root.join("bootstrap"), crc.args.clone()),
        };
        Ok(Launch::Process(ProcessLaunch {
            program,
            args,
            path_dirs: Vec::new(),
            mounts: Vec::new(),
            reads_assignment: false,
            image: None,
        }))
    }

    fn blank_launch(&self, _memory_mb: u32) -> Option<ProcessLaunch> {
        // The jail alone: the function's command is known, and run, on assignment.
        Some(ProcessLaunch {
            program: PathBuf::new(),
            args: Vec::new(),
            path_dirs: Vec::new(),
            mounts: Vec::new(),
            reads_assignment: false,
            image: None,
        })
    }

    fn describe(&self) -> String {
        "the function's own server (bootstrap or customRuntimeConfig.command)".to_owned()
    }
}

/// A command from `customRuntimeConfig`: relative paths and `/code/...` are taken inside the
/// function's code directory.
fn code_path(code_root: &Path, cmd: &str) -> PathBuf {
    if let Some(rest) = cmd.strip_prefix("/code/") {
        return code_root.join(rest);
    }
    if cmd.contains('/') && !cmd.starts_with('/') {
        return code_root.join(cmd);
    }
    cmd.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_resolve_inside_the_code_dir() {
        let root = Path::new("/data/code/abc");
        assert_eq!(code_path(root, "/code/bin/server"), root.join("bin/server"));
        assert_eq!(code_path(root, "./server"), root.join("./server"));
        assert_eq!(code_path(root, "python3"), PathBuf::from("python3"));
        assert_eq!(
            code_path(root, "/usr/bin/env"),
            PathBuf::from("/usr/bin/env")
        );
    }
}
