//! The Render source, wired in: `[render]` from the config; backup,
//! restore (env dir, Blueprint, into a service) and `diff`.

use anyhow::Result;
use lifeboat_render::{Client, EnvForm, RenderDiff, RenderOptions};
use lifeboat_store::secrecy::SecretString;
use lifeboat_store::{Access, FullAccess, Index, ManifestItem, Repository};

use super::{AnyRepo, Ctx};
use crate::cli::{DiffArgs, RestoreArgs};
use crate::config::RenderConfig;
use crate::exit::{self, Code};

fn config(ctx: &Ctx) -> Result<&RenderConfig> {
    ctx.config.render()?.as_ref().ok_or_else(|| {
        exit::usage(
            "no Render account configured: add a [render] section with api_key = \"${RENDER_API_KEY}\"",
        )
    })
}

/// A client for the configured account.
pub fn client(ctx: &Ctx) -> Result<Client> {
    let c = config(ctx)?;
    let mut opts = RenderOptions::new(SecretString::from(c.api_key.clone()));
    if let Some(u) = &c.api_url {
        opts.api_url = u.clone();
    }
    opts.owner_id = c.owner_id.clone();
    opts.services = c.services.clone();
    if let Some(p) = c.page_size {
        opts.page_size = p;
    }
    if let Some(r) = c.retries {
        opts.retries = r;
    }
    Ok(Client::new(&opts)?)
}

/// `restore --source render --to-env-dir DIR | --render-yaml FILE |
/// --to-service NAME [--service NAME] [--yes]`.
pub fn restore(
    ctx: &Ctx,
    repo: &Repository<FullAccess>,
    index: &Index,
    items: &[ManifestItem],
    args: &RestoreArgs,
) -> Result<Code> {
    let chosen = [
        args.to_env_dir.is_some() || args.to_env_json.is_some(),
        args.render_yaml.is_some(),
        args.to_service.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if chosen != 1 {
        return Err(exit::usage(
            "--source render needs one of --to-env-dir DIR (or --to-env-json DIR), --render-yaml FILE, --to-service NAME",
        ));
    }
    let snap = lifeboat_render::load(repo, index, items)?;
    if args.to_env_dir.is_some() && args.to_env_json.is_some() {
        return Err(exit::usage(
            "--to-env-dir and --to-env-json write the same sets: choose one",
        ));
    }
    if args.env_dialect.is_some() && args.to_env_dir.is_none() {
        return Err(exit::usage("--env-dialect applies to --to-env-dir"));
    }
    let env_dir = match (&args.to_env_dir, &args.to_env_json) {
        (Some(d), _) => Some((d, EnvForm::Env(args.env_dialect.unwrap_or_default()))),
        (None, Some(d)) => Some((d, EnvForm::Json)),
        _ => None,
    };
    if let Some((dir, form)) = env_dir {
        let report = lifeboat_render::write_env_dir(&snap, dir, args.force, form)?;
        if ctx.global.json {
            ctx.print_json(&report)?;
        } else {
            let how = match form {
                EnvForm::Env(d) => format!("for the {d} reader"),
                EnvForm::Json => "as JSON".into(),
            };
            outln!(
                "wrote {} env vars and {} secret files ({} files, mode 0600, {how}) into {}, each read back and compared",
                report.env_vars,
                report.secret_files,
                report.files.len(),
                dir.display()
            )?;
            for set in &report.sets {
                outln!(
                    "  {} {:?} ({}) -> {}{}",
                    set.kind.replace('_', " "),
                    set.name,
                    set.id,
                    set.env_file.display(),
                    set.secret_files_dir
                        .as_ref()
                        .map(|d| format!(", secret files in {}", d.display()))
                        .unwrap_or_default()
                )?;
            }
        }
        return Ok(Code::Ok);
    }
    if let Some(to) = &args.render_yaml {
        let yaml = lifeboat_render::blueprint(&snap)?;
        super::write_output(to, args.force, &mut |out| {
            out.write_all(yaml.as_bytes())?;
            Ok(())
        })?;
        if to != "-" && !ctx.global.quiet {
            eprintln!(
                "wrote a Blueprint of {} services and {} env groups to {to} (values are sync: false)",
                snap.services.len(),
                snap.env_groups.len()
            );
        }
        return Ok(Code::Ok);
    }
    let target = args.to_service.as_deref().unwrap_or_default();
    if snap.service(target).is_some() && !args.allow_source {
        return Err(exit::usage(format!(
            "{target:?} is one of the backed-up (production) services: put the variables into a \
             staging service, or pass --allow-source if you really mean to overwrite it"
        )));
    }
    let from = match (&args.service, snap.services.as_slice()) {
        (Some(s), _) => s.clone(),
        (None, [one]) => one.name.clone(),
        (None, _) => {
            let names: Vec<&str> = snap.services.iter().map(|s| s.name.as_str()).collect();
            return Err(exit::usage(format!(
                "the snapshot has several services: choose whose variables to copy with --service ({})",
                names.join(", ")
            )));
        }
    };
    let (vars, files) = lifeboat_render::env_set(&snap, &from)?;
    let client = client(ctx)?;
    let plan = lifeboat_render::push_env(&client, target, vars, files, args.yes)?;
    if ctx.global.json {
        ctx.print_json(&plan)?;
    } else {
        outln!("{from} -> {target} ({}):", plan.service_id)?;
        print_delta("env vars", &plan.env_vars)?;
        print_delta("secret files", &plan.secret_files)?;
        if plan.is_empty() {
            outln!("  nothing to change")?;
        } else if plan.applied {
            outln!(
                "applied; the service's variables and files were read back and match the snapshot"
            )?;
        } else {
            outln!(
                "nothing changed yet: run again with --yes to apply (Render redeploys the service)"
            )?;
        }
    }
    Ok(Code::Ok)
}

fn print_delta(what: &str, d: &lifeboat_render::Delta) -> Result<()> {
    for (verb, names) in [
        ("added", &d.added),
        ("removed", &d.removed),
        ("changed", &d.changed),
    ] {
        if !names.is_empty() {
            outln!("  {what} {verb}: {}", names.join(", "))?;
        }
    }
    Ok(())
}

/// With the backup key: names from the state files (added and removed).
fn diff_in<A: Access>(repo: &Repository<A>, args: &DiffArgs) -> Result<(RenderDiff, String)> {
    let a = repo.find_snapshot(&args.from)?;
    let b = repo.find_snapshot(&args.to)?;
    let fa = lifeboat_render::fingerprints(repo, &a.snapshot)?;
    let fb = lifeboat_render::fingerprints(repo, &b.snapshot)?;
    let label = format!("{} -> {}", a.id.short(), b.id.short());
    Ok((lifeboat_render::diff(&fa, &fb), label))
}

/// With the restore key: fingerprints from the manifests (changed too).
fn diff_full(
    repo: &Repository<FullAccess>,
    index: &Index,
    args: &DiffArgs,
) -> Result<(RenderDiff, String)> {
    let a = repo.find_snapshot(&args.from)?;
    let b = repo.find_snapshot(&args.to)?;
    let fa = lifeboat_render::fingerprints_of_items(&repo.manifest(index, &a.snapshot)?);
    let fb = lifeboat_render::fingerprints_of_items(&repo.manifest(index, &b.snapshot)?);
    let label = format!("{} -> {}", a.id.short(), b.id.short());
    Ok((lifeboat_render::diff(&fa, &fb), label))
}

/// `lifeboat diff FROM [TO] --source render [--show-values]`.
pub fn diff(ctx: &Ctx, args: DiffArgs) -> Result<Code> {
    if args.source != lifeboat_ops::SourceKind::Render {
        return Err(exit::usage(format!(
            "diff compares Render snapshots (--source render); {} is not supported yet",
            args.source
        )));
    }
    let mut names_only = false;
    let (d, label) = if args.show_values {
        let repo = ctx.open_full()?;
        let (index, _) = repo.load_index()?;
        let (mut d, label) = diff_full(&repo, &index, &args)?;
        let load = |spec: &str| -> Result<lifeboat_render::RenderSnapshot> {
            let s = repo.find_snapshot(spec)?;
            let items = repo.manifest(&index, &s.snapshot)?;
            Ok(lifeboat_render::load(&repo, &index, &items)?)
        };
        d.reveal(&load(&args.from)?, &load(&args.to)?);
        (d, label)
    } else {
        match ctx.open_any()? {
            AnyRepo::Backup(r) => {
                names_only = true;
                diff_in(&r, &args)?
            }
            AnyRepo::Full(r) => {
                let (index, _) = r.load_index()?;
                diff_full(&r, &index, &args)?
            }
        }
    };
    if ctx.global.json {
        ctx.print_json(&d)?;
        return Ok(Code::Ok);
    }
    if d.is_empty() {
        outln!("render {label}: no changes")?;
        return Ok(Code::Ok);
    }
    outln!("render {label}:")?;
    for c in &d.changes {
        outln!("{} {}", c.status, c.item)?;
        print_delta("settings", &c.settings)?;
        print_delta("env vars", &c.env_vars)?;
        print_delta("secret files", &c.secret_files)?;
        print_delta("custom domains", &c.domains)?;
        print_delta("links", &c.links)?;
        for (name, (old, new)) in &c.values {
            let show =
                |v: &Option<String>| v.as_deref().map_or("(none)".into(), |s| format!("{s:?}"));
            outln!("    {name}: {} -> {}", show(old), show(new))?;
        }
    }
    if names_only {
        outln!("(backup key: names added and removed only; the restore key also shows which values changed)")?;
    } else if !args.show_values {
        outln!("(values redacted; --show-values reveals them with the restore key)")?;
    }
    Ok(Code::Ok)
}
