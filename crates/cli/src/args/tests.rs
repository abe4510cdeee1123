//! The command tree as a newcomer reads it in `--help`: every command says what it does, every
//! argument what it is for, and no command offers a flag it would ignore.

use clap::CommandFactory;

use super::{Args, KINDS_HELP, control_urls};

/// Every command of the tree with its path (`aviary canary status`), the root included.
fn commands() -> Vec<(String, clap::Command)> {
    fn walk(path: String, command: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.clone(), command.clone()));
        // clap's own `help` subcommands are not ours to describe.
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(format!("{path} {}", sub.get_name()), sub, out);
        }
    }
    let mut root = Args::command();
    // Propagates the global flags into the subcommands, as parsing does.
    root.build();
    let mut out = Vec::new();
    walk("aviary".into(), &root, &mut out);
    out
}

#[test]
fn every_command_has_about_text_and_every_argument_help() {
    let mut missing = Vec::new();
    for (path, command) in commands() {
        if command.get_about().is_none() {
            missing.push(format!("{path}: no description"));
        }
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if ["help", "version"].contains(&id) || arg.is_hide_set() {
                continue;
            }
            if arg.get_help().is_none() {
                missing.push(format!("{path}: {id} has no help"));
            }
        }
    }
    assert_eq!(missing, Vec::<String>::new());
}

/// The commands that never call the control plane take none of its flags.
#[test]
fn connection_flags_are_offered_only_where_they_are_used() {
    let offers = |command: &clap::Command, id: &str| {
        command.get_arguments().any(|a| a.get_id().as_str() == id)
    };
    let mut connected = Vec::new();
    for (path, command) in commands() {
        let name = path.split(' ').nth(1).unwrap_or_default();
        let talks = !["", "control", "logs", "up", "demo"].contains(&name);
        for flag in ["control", "token"] {
            assert_eq!(offers(&command, flag), talks, "{path} --{flag}");
        }
        // `up` and `demo` hand --ca to their proxies and workloads.
        let ca = talks || ["up", "demo"].contains(&name);
        assert_eq!(offers(&command, "ca"), ca, "{path} --ca");
        if talks {
            connected.push(path);
        }
    }
    for path in [
        "aviary get",
        "aviary canary status",
        "aviary proxy",
        "aviary agent",
    ] {
        assert!(
            connected.iter().any(|p| p == path),
            "{path} talks to the control plane"
        );
    }
}

#[test]
fn control_urls_get_a_scheme_or_are_refused_by_name() {
    let cases: [(&str, Result<&str, &str>); 7] = [
        ("127.0.0.1:7070", Ok("http://127.0.0.1:7070")),
        ("localhost:7070", Ok("http://localhost:7070")),
        ("https://cp:7070/", Ok("https://cp:7070/")),
        ("a:1, http://b:2", Ok("http://a:1,http://b:2")),
        (
            "ftp://cp",
            Err("'ftp://cp': the control plane speaks http:// or https://, not ftp://"),
        ),
        ("http://", Err("'http://' names no host")),
        (" , ", Err("no URL given")),
    ];
    for (text, expected) in cases {
        assert_eq!(
            control_urls(text).as_deref(),
            expected.map_err(|e| e.to_string()).as_deref(),
            "{text}"
        );
    }
}

/// `get --help` and `delete --help` list every kind, and every one listed is taken.
#[test]
fn the_kinds_help_lists_what_get_and_delete_take() {
    let listed: Vec<&str> = KINDS_HELP
        .split([',', ' ', '(', ')'])
        .filter(|w| !w.is_empty())
        .collect();
    for word in &listed {
        assert!(
            crate::get::parse_kind(word).is_ok() || crate::get::object_collection(word).is_some(),
            "'{word}' is listed but not taken"
        );
    }
    for kind in model::Kind::ALL {
        let plural = kind.plural().to_ascii_lowercase();
        assert!(listed.contains(&plural.as_str()), "{plural} is not listed");
    }
    for aviary_kind in ["workloads", "endpoints"] {
        assert!(listed.contains(&aviary_kind), "{aviary_kind} is not listed");
    }
    let help = Args::command()
        .find_subcommand_mut("delete")
        .expect("delete")
        .render_help()
        .to_string();
    assert!(help.contains("workloads (wl), endpoints (ep)"), "{help}");
}
