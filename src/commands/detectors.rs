//! `vigil detectors`: the registered detectors, with their parameters, defaults and a
//! one-line description (`--json` for machines).

use clap::Args;

#[derive(Args, Debug)]
pub struct DetectorsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn detectors(args: DetectorsArgs) -> anyhow::Result<()> {
    let registry = vigil::detect::registry();
    if args.json {
        let list: Vec<serde_json::Value> = registry
            .iter()
            .map(|d| {
                serde_json::json!({
                    "name": d.name(),
                    "description": d.description(),
                    "enabled_by_default": d.enabled_by_default(),
                    "parameters": d.parameters(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for d in registry {
        println!(
            "{} ({})\n    {}",
            d.name(),
            if d.enabled_by_default() {
                "enabled by default"
            } else {
                "disabled by default"
            },
            d.description()
        );
        for p in d.parameters() {
            println!(
                "    [detectors.{}] {} = {}\n        {}",
                d.name(),
                p.name,
                p.default,
                p.description
            );
        }
        println!();
    }
    println!("Enable, disable or tune one in the config file: [detectors.NAME] enabled = true, PARAM = VALUE");
    Ok(())
}
