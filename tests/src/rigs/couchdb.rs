//! The CouchDB rig: a database of the shared pouchdb-server behind the CouchDB proxy, the feed
//! deployed and a trigger `t` on it.

use std::time::Duration;

use serde_json::{json, Value};

use super::flatten;
use crate::couchproxy::CouchProxy;
use crate::pouchdb::{unique, PouchDb};
use crate::world::{fixture_bin, workspace_bin, World, USER};

/// One change as an event must report it: (kind, document id, rev).
pub type Change = (String, String, String);

/// A feed trigger `t` on a fresh database of the shared pouchdb-server, through a proxy.
pub struct Rig {
    /// The emulator with the package deployed.
    pub w: World,
    /// The shared pouchdb-server, behind the feed's back.
    pub server: &'static PouchDb,
    /// Between the feed and pouchdb-server: what pouchdb-server cannot show.
    pub proxy: CouchProxy,
    /// The watched database.
    pub db: String,
}

impl Rig {
    /// A fresh database of the shared pouchdb-server, the proxy and the world.
    pub fn start() -> Rig {
        let server = PouchDb::shared().expect("pouchdb-server starts (node and npm are needed)");
        let db = unique("feed");
        server.create_db(&db).expect("create database");
        let proxy = CouchProxy::start(&server.url).expect("proxy");
        let w = World::start(&workspace_bin("changes"), &workspace_bin("poll"));
        Rig { w, server, proxy, db }
    }

    /// Creates `t` with `--feed owfeed/changes -p source couchdb` and the recording rule.
    pub fn create(&self, extra: Value) -> Value {
        let mut params = json!({"source": "couchdb", "url": self.proxy.url, "dbname": self.db});
        if let (Value::Object(p), Value::Object(extra)) = (&mut params, extra) {
            p.extend(extra);
        }
        let created = self.w.create_trigger("t", params).expect("create trigger with feed");
        self.w.record_events("t", &fixture_bin("echo-action"));
        created
    }

    /// Creates document `id`: the change it makes.
    pub fn put(&self, id: &str) -> Change {
        let rev = self.server.put(&self.db, id, json!({"v": 1})).expect("put");
        ("created".into(), id.into(), rev)
    }

    /// Updates document `id`: the change it makes.
    pub fn update(&self, id: &str) -> Change {
        let rev = self.server.update(&self.db, id, json!({"v": 2})).expect("update");
        ("updated".into(), id.into(), rev)
    }

    /// Deletes document `id`: the change it makes.
    pub fn delete(&self, id: &str) -> Change {
        let rev = self.server.delete(&self.db, id).expect("delete");
        ("deleted".into(), id.into(), rev)
    }

    /// Creates many documents in one `_bulk_docs` request.
    pub fn put_many(&self, ids: &[String]) -> Vec<Change> {
        let docs: Vec<Value> = ids.iter().map(|id| json!({"_id": id, "v": 1})).collect();
        self.server.bulk(&self.db, &docs).expect("bulk");
        ids.iter().map(|id| ("created".into(), id.clone(), self.server.rev(&self.db, id).expect("rev"))).collect()
    }

    /// READ of `t`.
    pub fn read(&self) -> Value {
        self.w.feed("READ", "t", json!({})).expect("READ")
    }

    /// Invokes the binding's poll action once, blocking: its result, or its error message.
    pub fn poll_once(&self) -> Result<Value, String> {
        self.w.poll_once("t")
    }

    /// `wsk action update owfeed/poll --timeout MS`.
    pub fn set_poll_timeout(&self, ms: u64) {
        self.w.set_poll_timeout(ms)
    }

    /// Polls until READ shows nothing pending, waiting out the lease a killed poll left.
    pub fn recover(&self) -> usize {
        for n in 1..=20 {
            match self.poll_once() {
                Ok(r) if r["status"] == "busy" => {
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
                Ok(_) => {}
                Err(e) => panic!("a poll without faults failed: {e}"),
            }
            assert!(self.w.emu.wait_idle(Duration::from_secs(120)), "emulator did not go idle");
            if self.read()["status"]["eventsPending"] == 0 {
                return n;
            }
        }
        panic!("the feed did not recover within 20 polls: {}", self.read());
    }

    /// Every event the recorder received so far, oldest first (batches flattened).
    pub fn received(&self) -> Vec<Value> {
        flatten(self.w.events())
    }

    /// Every event the trigger accepted, in the order the fires were accepted.
    pub fn accepted(&self) -> Vec<Value> {
        let fires = self.w.emu.activations(USER).into_iter().filter(|a| a["name"] == "t");
        flatten(fires.map(|a| a["response"]["result"].clone()).collect())
    }
}

/// The change an event reports.
pub fn change_of(e: &Value) -> Change {
    let kind = e["type"].as_str().unwrap_or("?").rsplit('.').next().unwrap_or("?").to_string();
    (kind, e["data"]["key"].as_str().unwrap_or("?").to_string(), e["data"]["rev"].as_str().unwrap_or("?").to_string())
}
