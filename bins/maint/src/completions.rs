//! `maint completions SHELL` and `maint man DIR`: the shell completion scripts and the man
//! pages, generated from the command line's own definition (so they never drift from it).

use std::path::Path;

use clap::Command;
use clap_complete::Shell;
use maint_core::Error;

/// The completion script of `cmd` for `shell` (in memory: clap_complete panics when its
/// writer fails, as stdout does when closed early).
pub(crate) fn completions(shell: Shell, mut cmd: Command) -> Vec<u8> {
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// Writes `maint.1` and one page per subcommand (`maint-run.1`, ...) into `dir`.
pub(crate) fn man_pages(cmd: Command, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    clap_mangen::generate_to(cmd, dir).map_err(Error::io("write the man pages to", dir))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn script(shell: Shell) -> String {
        String::from_utf8(completions(shell, crate::Cli::command())).unwrap()
    }

    #[test]
    fn completion_scripts_know_every_subcommand_and_bash_loads_its_own() {
        let subcommands: Vec<String> =
            crate::Cli::command().get_subcommands().map(|s| s.get_name().to_owned()).collect();
        assert!(subcommands.contains(&"completions".to_owned()) && subcommands.len() >= 8, "{subcommands:?}");
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = script(shell);
            for sub in &subcommands {
                assert!(text.contains(sub.as_str()), "{shell}: no {sub}");
            }
        }
        let dir = std::env::temp_dir().join(format!("maint-completions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("maint.bash");
        std::fs::write(&file, script(Shell::Bash)).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("source {} && complete -p maint", file.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains("maint"), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn man_pages_cover_the_command_and_each_subcommand() {
        let dir = std::env::temp_dir().join(format!("maint-man-{}", std::process::id()));
        man_pages(crate::Cli::command(), &dir.join("man1")).unwrap();
        let main = std::fs::read_to_string(dir.join("man1/maint.1")).unwrap();
        assert!(main.contains(".TH maint 1") && main.contains("config\\-check"), "{main}");
        let run = std::fs::read_to_string(dir.join("man1/maint-run.1")).unwrap();
        assert!(run.contains("\\-\\-only\\-in\\-window"), "{run}");
        assert!(dir.join("man1/maint-completions.1").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
