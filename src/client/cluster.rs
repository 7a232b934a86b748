//! [`Client`]'s cluster reads: the leader, the stats, the live nodes.

use super::*;

impl Client {
    /// Who leads, or `None` when the lease is free.
    pub fn leader(&mut self) -> Result<Option<LeaderStatus>> {
        let keys = &self.store.keys;
        type Reply = (
            Option<String>,
            i64,
            Option<u64>,
            HashMap<String, String>,
            (u64, u64),
        );
        let (node, ttl_ms, epoch, status, now): Reply = self.conn.run(|c| {
            redis::pipe()
                .get(keys.leader())
                .pttl(keys.leader())
                .get(keys.epoch())
                .hgetall(keys.leader_status())
                .cmd("TIME")
                .query(c)
        })?;
        let Some(node) = node else {
            return Ok(None);
        };
        let epoch = epoch.unwrap_or(0);
        let now_ms = now.0 * 1000 + now.1 / 1000;
        let num = |k: &str| status.get(k).and_then(|v| v.parse::<u64>().ok());
        // Fields from an earlier term must not be shown as this term's.
        let of_term = |node_field: &str, epoch_field: &str| {
            status.get(node_field) == Some(&node) && num(epoch_field) == Some(epoch)
        };
        let elected_ms = if of_term("node", "epoch") {
            num("elected_ms")
        } else {
            None
        };
        let last_tick_age_ms = if of_term("tick_node", "tick_epoch") {
            num("tick_ms").map(|t| now_ms.saturating_sub(t))
        } else {
            None
        };
        Ok(Some(LeaderStatus {
            node,
            epoch,
            ttl_ms,
            elected_ms: elected_ms.unwrap_or(0),
            last_tick_age_ms,
        }))
    }

    /// A cluster summary: leader, live nodes and what they hold, live tasks
    /// by place, task rates over the last minute ([`ClusterStats`]). Costs
    /// four round trips, bounded by the live nodes and their tasks.
    pub fn stats(&mut self) -> Result<ClusterStats> {
        let leader = self.leader()?;
        let nodes = self.nodes()?;
        crate::stats::read(&self.store, &mut self.conn, leader, nodes)
    }

    /// True while node `node`'s registry entry exists and belongs to process
    /// `instance` (what `/ready` checks).
    pub(crate) fn is_registered(&mut self, node: &str, instance: &str) -> Result<bool> {
        let key = self.store.keys.node(node);
        let current: Option<String> = self
            .conn
            .run(|c| redis::cmd("HGET").arg(&key).arg("instance").query(c))?;
        Ok(current.as_deref() == Some(instance))
    }

    /// Live nodes (registry entry not expired), sorted by id.
    pub fn nodes(&mut self) -> Result<Vec<NodeStatus>> {
        let keys = &self.store.keys;
        let ids: Vec<String> = self.conn.run(|c| {
            redis::cmd("ZRANGE")
                .arg(keys.nodes())
                .arg(0)
                .arg(-1)
                .query(c)
        })?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let leader: Option<String> = self
            .conn
            .run(|c| redis::cmd("GET").arg(keys.leader()).query(c))?;
        let replies: Vec<redis::Value> = self.conn.run(|c| {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hgetall(keys.node(id)).pttl(keys.node(id));
            }
            pipe.query(c)
        })?;
        let mut entries = Vec::with_capacity(ids.len());
        for pair in replies.chunks(2) {
            let fields: HashMap<String, String> = redis::from_redis_value(pair[0].clone())?;
            let ttl_ms: i64 = redis::from_redis_value(pair[1].clone())?;
            entries.push((fields, ttl_ms));
        }
        let mut nodes = Vec::new();
        for (fields, ttl_ms) in entries {
            let (Some(info), Some(heartbeat_ms)) = (
                fields.get("info"),
                fields.get("heartbeat_ms").and_then(|v| v.parse().ok()),
            ) else {
                continue; // expired: the node is dead, the index entry stale
            };
            let info: NodeInfo = serde_json::from_str(info)?;
            let leader = leader.as_deref() == Some(info.id.as_str());
            let draining = fields.get("draining").is_some_and(|v| v == "1");
            nodes.push(NodeStatus {
                info,
                heartbeat_ms,
                ttl_ms,
                leader,
                draining,
            });
        }
        nodes.sort_by(|a, b| a.info.id.cmp(&b.info.id));
        Ok(nodes)
    }
}
