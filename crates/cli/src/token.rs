//! `aviary token create|list|revoke`: the control plane's bearer tokens.

use client::Client;

use crate::args::TokenCommand;

pub async fn run(client: &Client, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(opts) => {
            let out = client
                .create_token(&opts.name, &opts.role, opts.mesh.as_deref())
                .await?;
            // The secret itself on stdout alone, so `$(aviary token create ...)` captures it.
            eprintln!(
                "token {} ({}, role {}) created; it is not shown again:",
                out["id"].as_str().unwrap_or_default(),
                out["name"].as_str().unwrap_or_default(),
                out["role"].as_str().unwrap_or_default()
            );
            println!("{}", out["token"].as_str().unwrap_or_default());
        }
        TokenCommand::List => {
            println!("{:<18} {:<24} {:<9} MESH", "ID", "NAME", "ROLE");
            for token in client.list_tokens().await? {
                println!(
                    "{:<18} {:<24} {:<9} {}",
                    token["id"].as_str().unwrap_or_default(),
                    token["name"].as_str().unwrap_or_default(),
                    token["role"].as_str().unwrap_or_default(),
                    token["mesh"].as_str().unwrap_or("-")
                );
            }
        }
        TokenCommand::Revoke { id } => {
            client.revoke_token(&id).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}
