//! The pidfile: the pid of the process to signal (`kill -HUP $(cat app.pid)`), written before
//! any worker starts so that a path that cannot be written stops the start instead of leaving
//! the operator's scripts without it.

use std::path::{Path, PathBuf};

use nix::unistd::{Pid, getpid};

use super::ForkError;

/// A pidfile naming this process.
#[derive(Debug)]
pub(super) struct Pidfile {
    path: PathBuf,
    pid: Pid,
}

impl Pidfile {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            pid: getpid(),
        }
    }

    /// Writes this process's pid, atomically (a new file renamed over the old one), so a reader
    /// never sees a half-written pid.
    pub(super) fn write(&self) -> Result<(), ForkError> {
        let mut partial = self.path.as_os_str().to_owned();
        partial.push(".new");
        let partial = PathBuf::from(partial);
        std::fs::write(&partial, format!("{}\n", self.pid))
            .and_then(|()| std::fs::rename(&partial, &self.path))
            .map_err(|source| {
                let _ = std::fs::remove_file(&partial);
                ForkError::Pidfile {
                    path: self.path.clone(),
                    source,
                }
            })
    }

    /// Removes the file if it still names this process: after a binary upgrade it names the
    /// new supervisor, whose file it is.
    pub(super) fn remove(&self) {
        if read_pid(&self.path) == Some(self.pid) {
            if let Err(error) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), %error, "cannot remove the pidfile");
            }
        }
    }
}

fn read_pid(path: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().map(Pid::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfile_names_this_process_and_is_removed_only_while_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pid");
        let pidfile = Pidfile::new(path.clone());
        pidfile.write().unwrap();
        assert_eq!(read_pid(&path), Some(getpid()));
        std::fs::write(&path, "1\n").unwrap();
        pidfile.remove();
        assert!(path.exists(), "a file naming another process is left alone");
        pidfile.write().unwrap();
        pidfile.remove();
        assert!(!path.exists());
    }

    #[test]
    fn a_pidfile_in_a_missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("app.pid");
        let error = Pidfile::new(path.clone()).write().unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("pidfile"), "{error}");
    }

    #[test]
    fn a_pidfile_path_naming_a_directory_is_an_error_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let error = Pidfile::new(dir.path().to_owned()).write().unwrap_err();
        assert!(matches!(error, ForkError::Pidfile { .. }), "{error}");
        let mut partial = dir.path().as_os_str().to_owned();
        partial.push(".new");
        assert!(!Path::new(&partial).exists());
    }
}
