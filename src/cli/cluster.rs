//! `distsched leader` and `distsched workers`: who leads, who is alive.

use lexopt::Parser;

use super::{CliResult, Common, Opt, exit, human_ms, next, print_json, print_table};

const LEADER_HELP: &str = "\
usage: distsched leader [--redis URL] [--ns NAME] [--json]

Shows the node holding the leader lease, its fencing epoch, the lease time
left, and the age of its last fenced write. Exits 1 when nobody leads.";

const WORKERS_HELP: &str = "\
usage: distsched workers [--redis URL] [--ns NAME] [--json]

Lists live nodes (registry entry not expired): id, role, host, pid,
capacity, running tasks, weight, tags, and the time left before the entry
expires (the node counts as dead then); `*` marks the leader.";

/// Parses the common options of a command that takes no other; `None`
/// when help was printed.
pub(super) fn parse(parser: &mut Parser, command: &str, help: &str) -> CliResult<Option<Common>> {
    let mut common = Common::from_env();
    while let Some(opt) = next(parser)? {
        if common.take(&opt, parser)? {
            continue;
        }
        match opt {
            Opt::Short('h') => {
                outln!("{help}");
                return Ok(None);
            }
            Opt::Long(ref l) if l == "help" => {
                outln!("{help}");
                return Ok(None);
            }
            other => return Err(other.unexpected(command)),
        }
    }
    Ok(Some(common))
}

/// `distsched leader`.
pub fn leader(parser: &mut Parser) -> CliResult {
    let Some(common) = parse(parser, "leader", LEADER_HELP)? else {
        return Ok(exit::OK);
    };
    let status = common.client()?.leader()?;
    if common.json {
        print_json(&status)?;
    } else if let Some(s) = &status {
        let tick = s
            .last_tick_age_ms
            .map_or("-".into(), |ms| format!("{} ago", human_ms(ms as i64)));
        print_table(
            &["LEADER", "EPOCH", "TTL", "LAST WRITE"],
            &[vec![
                s.node.clone(),
                s.epoch.to_string(),
                human_ms(s.ttl_ms),
                tick,
            ]],
        );
    } else {
        outln!("no leader");
    }
    Ok(if status.is_some() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// `distsched workers`.
pub fn workers(parser: &mut Parser) -> CliResult {
    let Some(common) = parse(parser, "workers", WORKERS_HELP)? else {
        return Ok(exit::OK);
    };
    let mut client = common.client()?;
    let nodes = client.nodes()?;
    if common.json {
        print_json(&nodes)?;
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                format!("{}{}", n.info.id, if n.leader { " *" } else { "" }),
                n.info.role.to_string(),
                n.info.host.clone(),
                n.info.pid.to_string(),
                n.info.capacity.to_string(),
                n.info.running.to_string(),
                n.info.weight.to_string(),
                if n.info.tags.is_empty() {
                    "-".into()
                } else {
                    n.info.tags.join(",")
                },
                human_ms(n.ttl_ms),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "ROLE", "HOST", "PID", "CAPACITY", "RUNNING", "WEIGHT", "TAGS", "TTL",
        ],
        &rows,
    );
    Ok(exit::OK)
}
