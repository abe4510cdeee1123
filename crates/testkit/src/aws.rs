//! The real AWS CLI (`aws appmesh ...`) pointed at an aviary endpoint, isolated from the user's AWS setup.

use std::process::{Command, ExitStatus};
use std::time::Duration;

use serde_json::Value;

use crate::process::run_bounded;

/// Far above a healthy call (well under a second); only a hung server gets near it.
const AWS_TIMEOUT: Duration = Duration::from_secs(60);

/// What one `aws` invocation printed and how it exited.
#[derive(Debug)]
pub struct AwsOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl AwsOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The service error type the CLI reported, from its
    /// `An error occurred (NotFoundException) when calling the ... operation: ...` line.
    pub fn error_code(&self) -> Option<&str> {
        let rest = &self.stderr[self.stderr.find("An error occurred (")? + 19..];
        Some(&rest[..rest.find(')')?])
    }

    /// The service's message: what follows `... operation: ` (or, when the CLI adds retry
    /// information, `... operation (reached max retries: 0): `).
    pub fn error_message(&self) -> Option<&str> {
        let start = self.stderr.find("An error occurred (")?;
        let rest = &self.stderr[start..];
        let rest = &rest[rest.find(" operation")? + " operation".len()..];
        let rest = match rest.strip_prefix(" (") {
            Some(note) => &note[note.find(')')? + 1..],
            None => rest,
        };
        Some(rest.strip_prefix(": ")?.trim_end())
    }

    /// Panics unless the command failed with service error `code`; returns stderr.
    pub fn expect_error(&self, code: &str) -> &str {
        assert!(
            !self.success(),
            "expected {code}, but the command succeeded:\n{}",
            self.stdout
        );
        assert_eq!(self.error_code(), Some(code), "stderr:\n{}", self.stderr);
        &self.stderr
    }

    /// Parses stdout as JSON, panicking with both streams if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "aws printed no JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A `Command` for `aws` with a fixed, isolated environment: the test keys every
/// [`crate::ControlProcess`] is seeded with, region us-west-2, no pager,
/// no instance metadata lookups, no profile or config file from the machine, and no retries so a
/// failure shows on the first attempt. Useful for scripts such as `examples/demomesh/create.sh`.
pub fn aws_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_CA_BUNDLE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", crate::TEST_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", crate::TEST_SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-west-2")
        .env("AWS_PAGER", "")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aviary-testkit/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aviary-testkit/credentials",
        )
        .env("AWS_RETRY_MODE", "standard")
        .env("AWS_MAX_ATTEMPTS", "1");
    cmd
}

/// Runs `aws --endpoint-url URL appmesh ARGS...` (with `--output json` unless `args` choose an
/// output) and returns what happened, success or not.
pub fn aws(url: &str, args: &[&str]) -> AwsOutput {
    let mut cmd = aws_command("aws");
    cmd.args(["--endpoint-url", url, "--cli-read-timeout", "30", "appmesh"])
        .args(args);
    if !args
        .iter()
        .any(|a| *a == "--output" || a.starts_with("--output="))
    {
        cmd.args(["--output", "json"]);
    }
    let done = run_bounded(&mut cmd, AWS_TIMEOUT);
    AwsOutput {
        status: done.status,
        stdout: done.stdout,
        stderr: done.stderr,
    }
}

/// Runs any command (a script such as `examples/demomesh/create.sh`, say, under
/// [`aws_command`]'s environment) to completion within `timeout`, killing it and panicking if it
/// takes longer.
pub fn run(cmd: &mut Command, timeout: Duration) -> AwsOutput {
    let done = run_bounded(cmd, timeout);
    AwsOutput {
        status: done.status,
        stdout: done.stdout,
        stderr: done.stderr,
    }
}

/// Like [`aws`], but panics unless the command succeeded; returns stdout.
pub fn aws_ok(url: &str, args: &[&str]) -> String {
    let out = aws(url, args);
    assert!(
        out.success(),
        "aws appmesh {} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Like [`aws`], but panics unless the command succeeded, and parses its JSON output.
/// Commands that print nothing (tag-resource, for example) give `Value::Null`.
pub fn aws_json(url: &str, args: &[&str]) -> Value {
    let stdout = aws_ok(url, args);
    if stdout.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "aws appmesh {} printed no JSON ({e}):\n{stdout}",
            args.join(" ")
        )
    })
}
