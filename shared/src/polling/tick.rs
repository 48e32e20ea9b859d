//! The scheduler's tick: one activation a minute polls every trigger of the namespace that is
//! due, within the namespace's budgets.
//!
//! A tick claims its minute in the scheduler's record (a second tick while one runs leaves at
//! once), lists the registry (the namespace's bindings of our package, with their
//! registrations), takes the triggers due in the minutes since the last tick (interval on
//! its phase, cron when the minute matches, what the last tick left in its backlog, or all of
//! them when fired with `-p due all`), reads each due trigger's config binding and polls it
//! exactly as one trigger's poll does (lease, outbox, ids unchanged), on a bounded pool of
//! threads, each poll within its own time budget (a large listing checkpoints and goes on in
//! the next tick). Connection-mode triggers get a thread each and are held until the tick's
//! end: they wait on I/O, so many share one activation. Every fire goes through one
//! [`NamespacePace`]. When the last tick's pace says one activation cannot poll everything in
//! its window (or there are more connection-mode triggers than one activation holds), the
//! tick fans out to more `poll` activations (non-blocking invokes of the same binding with
//! `tickPart`), at most `namespaceConcurrency` in all, each with its share of the budgets.
//! At its end it records what it did (READ's picture of the namespace) and the backlog; a
//! scheduler that found no active trigger twice removes itself.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{json, Value};

use super::extensions::Extensions;
use super::log::Mode;
use super::memory::{self, MemoryGate};
use super::poll::{poll_once, Share};
use super::scheduler::{self, Budgets, Claim, Listed, Record, Scheduler, TickSummary};
use crate::budget::now_ms;
use crate::delivery::{NamespaceLimits, NamespacePace, Spent};
use crate::lifecycle::read_binding;
use crate::openwhisk::{ApiTls, AuthKey, Client, QualifiedName};
use crate::params::{ParamError, Params};
use crate::runtime::{ActionError, Context};
use crate::schedule::stable_hash;
use crate::store::PollOutcome;

/// Polls listing, reading and committing at once in one activation (connection mode aside).
pub const POLL_THREADS: usize = 8;
/// Polls in progress at once in one activation: more than [`POLL_THREADS`], since a poll
/// waiting for its turn to fire lends its work slot to another (`NamespacePace::work_slot`).
const POLLS_IN_PROGRESS: usize = 64;
/// Longest one trigger's poll may take in a tick: a listing that needs longer checkpoints and
/// goes on in the next tick, so a huge bucket cannot starve the others.
pub const POLL_TIME: Duration = Duration::from_secs(20);
/// Connection-mode triggers one activation holds at most (a thread each, waiting on I/O).
pub const CONNECTIONS_PER_ACTIVATION: usize = 100;
/// Longest a tick works: it ends before the next minute's tick starts.
const TICK_TIME: Duration = Duration::from_secs(57);
/// No poll is started with less time than this left.
const MIN_POLL_TIME: Duration = Duration::from_secs(2);
/// Time kept at the end of the activation for the record (at most; a tenth of short ones).
const RECORD_MARGIN: Duration = Duration::from_secs(3);
/// Minutes a late tick looks back for the triggers due meanwhile.
const CATCH_UP_MINUTES: u64 = 60;
/// A claim older than this is a tick that died without finishing.
const CLAIM_TTL_MS: u64 = 70_000;
/// Polls a result lists in full; beyond, only those that did not end `ok`.
const POLLS_IN_RESULT: usize = 200;
/// Problems a summary keeps.
const PROBLEMS_KEPT: usize = 10;

/// One trigger to poll.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Job {
    /// Its config binding.
    binding: String,
    /// The user's trigger.
    trigger: String,
    /// Held open for the whole window.
    connection: bool,
    /// Objects in its snapshot when it is a large one (what its poll is admitted by).
    #[serde(skip_serializing_if = "is_zero")]
    objects: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Job {
    /// Its poll's memory estimate.
    fn kib(&self) -> u64 {
        memory::weight_kib(self.objects)
    }
}

/// What a fanned-out activation is given (`tickPart`). Sent with serde, read by hand
/// (`from_value`), as the scheduler's record is (a derived Deserialize costs kilobytes).
#[derive(Clone, Debug, Serialize)]
struct Part {
    parent: String,
    jobs: Vec<Job>,
    fires: u32,
    invocations: u32,
    burst: u32,
}

impl Part {
    /// The part in `v`, or what is wrong with it.
    fn from_value(v: &Value) -> Result<Part, String> {
        let text = |key: &str| v[key].as_str().map(str::to_string).ok_or(format!("'{key}' is not a string"));
        let count =
            |key: &str| v[key].as_u64().and_then(|n| u32::try_from(n).ok()).ok_or(format!("'{key}' is not a count"));
        let jobs = v["jobs"].as_array().ok_or("'jobs' is not a list")?;
        let jobs = jobs
            .iter()
            .map(|j| {
                Some(Job {
                    binding: j["binding"].as_str()?.to_string(),
                    trigger: j["trigger"].as_str()?.to_string(),
                    connection: j["connection"].as_bool().unwrap_or(false),
                    objects: j["objects"].as_u64().unwrap_or(0),
                })
            })
            .collect::<Option<Vec<Job>>>()
            .ok_or("a job has no 'binding' or 'trigger'")?;
        Ok(Part {
            parent: text("parent")?,
            jobs,
            fires: count("fires")?,
            invocations: count("invocations")?,
            burst: count("burst")?,
        })
    }
}

/// How one job ended.
struct Outcome {
    job: Job,
    result: Value,
    ms: u64,
}

/// What every tick and part share.
struct Setup<'a> {
    ctx: &'a Context,
    client: Client,
    scheduler: Scheduler,
    package: QualifiedName,
    budgets: Budgets,
    /// When polls must be done.
    work_end: SystemTime,
}

impl<'a> Setup<'a> {
    fn new(ctx: &'a Context, params: &Params) -> Result<Setup<'a>, ActionError> {
        let started = SystemTime::now();
        let key = ctx.api_key.as_ref().ok_or_else(|| {
            ActionError::new("poll: no API key in the activation (the action needs the provide-api-key annotation)")
        })?;
        let auth = AuthKey::parse(key.expose())
            .map_err(|_| ActionError::new("poll: the activation's API key is malformed"))?;
        let api_host = ctx.api_host.clone().ok_or_else(|| ActionError::new("runtime: __OW_API_HOST is not set"))?;
        let package = ctx
            .package()
            .and_then(|p| QualifiedName::parse(p, &ctx.namespace).ok())
            .ok_or_else(|| ActionError::new("poll: cannot tell this action's package from its name"))?;
        let budgets = Budgets::from_params(params)?;
        let total = ctx.time_left();
        let reserve = total.map_or(RECORD_MARGIN, |t| RECORD_MARGIN.min(t / 10));
        let by_deadline = ctx.deadline.map(|d| d - reserve);
        let work_end = by_deadline.map_or(started + TICK_TIME, |d| d.min(started + TICK_TIME));
        let tls = ApiTls::from_params(params)?;
        // The tick's own requests (the record at the end) may use the reserve.
        let client = Client::new(&api_host, auth).with_tls(&tls).map_err(ActionError::new)?.until(ctx.deadline);
        let scheduler = Scheduler::new(&ctx.namespace, &package);
        Ok(Setup { ctx, client, scheduler, package, budgets, work_end })
    }

    /// When the polls stop firing: the window's end less the time a poll keeps for its
    /// final commit.
    fn fires_end(&self) -> SystemTime {
        self.work_end - super::margins(Some(self.left())).0
    }

    fn left(&self) -> Duration {
        self.work_end.duration_since(SystemTime::now()).unwrap_or_default()
    }
}

/// The tick (or, with `tickPart`, the share of a tick an activation was fanned out to).
pub(super) fn tick(ctx: &Context, params: Params, ext: &Extensions) -> Result<Value, ActionError> {
    let setup = Setup::new(ctx, &params)?;
    if let Some(part) = params.raw("tickPart") {
        let part = Part::from_value(part).map_err(|e| ActionError::new(format!("parameter 'tickPart': {e}")))?;
        return Ok(run_part(&setup, part, ext));
    }
    run_tick(&setup, &params, ext)
}

fn run_part(setup: &Setup, part: Part, ext: &Extensions) -> Value {
    let limits =
        NamespaceLimits { fires_per_minute: part.fires, invocations_per_minute: part.invocations, burst: part.burst };
    let pace = NamespacePace::new(limits, Spent { minute: now_ms() / 60_000, ..Spent::default() })
        .with_work_slots(POLL_THREADS)
        .with_window(setup.fires_end());
    let (outcomes, left) = run_jobs(setup, part.jobs, &pace, ext);
    let backlog = backlog_of(&outcomes, &left);
    let mut result = results(&outcomes, &left);
    result["status"] = json!("tick part");
    result["fired"] = json!(outcomes.iter().map(|o| o.result["fired"].as_u64().unwrap_or(0)).sum::<u64>());
    result["pending"] = json!(outcomes.iter().map(|o| o.result["pending"].as_u64().unwrap_or(0)).sum::<u64>());
    result["parent"] = json!(part.parent);
    result["backlog"] = json!(backlog);
    // The parent's next tick remembers them, as it does its own polls'.
    let sizes: serde_json::Map<String, Value> =
        sizes_of(&outcomes).into_iter().filter_map(|(b, n)| Some((b, json!(n?)))).collect();
    result["sizes"] = Value::Object(sizes);
    result
}

fn run_tick(setup: &Setup, params: &Params, ext: &Extensions) -> Result<Value, ActionError> {
    let started = now_ms();
    let minute = started / 60_000;
    let forced = Forced::from_params(params)?;
    let mut record = match claim(setup, started)? {
        Claimed::Mine(record) => *record,
        Claimed::Skipped(result) => return Ok(result),
    };
    let listed = match scheduler::list(&setup.client, &setup.package) {
        Ok(listed) => listed,
        Err(e) => {
            record.running = None;
            let _ = scheduler::write_record(&setup.client, &setup.scheduler, &record);
            return Err(ActionError::new(format!("tick: listing the namespace's bindings of {}: {e}", setup.package)));
        }
    };
    let registered: Vec<&Listed> = listed.iter().filter(|l| l.registration.is_some()).collect();
    let active = registered.iter().filter(|l| l.registration.as_ref().is_some_and(|r| !r.paused)).count();
    let legacy = listed.iter().filter(|l| l.registration.is_none() && l.binding.ends_with(".owfeed")).count();
    let due = due_jobs(setup, &forced, &mut record, &registered, minute);
    let shares = Shares::new(setup, &record, minute, parts_for(setup, &record, &due));
    let (own, children) = fan_out(setup, deal(&due, shares.parts), &shares.limits);
    let spent = Spent { minute, fires: 0, invocations: 0 };
    let pace = NamespacePace::new(shares.limits, spent).with_work_slots(POLL_THREADS).with_window(setup.fires_end());
    let (outcomes, left) = run_jobs(setup, own, &pace, ext);

    // The record: what this tick did, what is left for the next one.
    shares.account(&mut record, pace.spent(), children.len());
    let next_backlog = backlog_of(&outcomes, &left);
    for (binding, objects) in sizes_of(&outcomes) {
        memory::remember(&mut record.sizes, &binding, objects);
    }
    let summary = summarize(setup, started, &outcomes, &left, &listed, active, legacy, due.len(), &children);
    let mut result = results(&outcomes, &left);
    result["status"] = json!("tick");
    result["registered"] = json!(summary.registered);
    result["due"] = json!(due.len());
    result["children"] = json!(children);
    result["fired"] = json!(summary.fired);
    result["pending"] = json!(summary.pending);
    result["backlog"] = json!(next_backlog);
    record.backlog = next_backlog;
    record.children = children;
    record.last = Some(summary);
    record.running = None;
    close(setup, record, result, active)
}

/// What claiming the tick's minute came to.
enum Claimed {
    /// The scheduler's record, claimed for this tick.
    Mine(Box<Record>),
    /// Another tick still runs: this one's result.
    Skipped(Value),
}

/// Claims the minute in the scheduler's record, unless a tick that started less than
/// `CLAIM_TTL_MS` ago still runs. A claim that cannot be written only risks a second tick.
fn claim(setup: &Setup, started: u64) -> Result<Claimed, ActionError> {
    let s = &setup.scheduler;
    let Some(doc) = scheduler::read_doc(&setup.client, s)? else {
        return Err(ActionError::new(format!(
            "tick: the namespace scheduler's binding {} does not exist (CREATE, UPDATE or READ of any feed makes \
             it); fire {} to run a tick by hand",
            s.binding, s.alarm
        )));
    };
    let mut record = Record::from_annotations(&doc["annotations"]);
    if let Some(running) = &record.running {
        if running.activation != setup.ctx.activation_id && started.saturating_sub(running.started_ms) < CLAIM_TTL_MS {
            return Ok(Claimed::Skipped(json!({
                "status": "skipped",
                "reason": format!("the tick {} started at {} is still running", running.activation, super::iso(running.started_ms)),
            })));
        }
    }
    record.running = Some(Claim { activation: setup.ctx.activation_id.clone(), started_ms: started });
    if let Err(e) = scheduler::write_record(&setup.client, s, &record) {
        crate::runtime::log(&format!("tick: claiming the minute: {e}"));
    }
    Ok(Claimed::Mine(Box::new(record)))
}

/// What is due, in order: the backlog (the record's and the fanned-out activations'), then
/// the triggers due in the minutes since the last tick (this one at least) or named by a tick
/// by hand, in a new order every minute. Takes the backlog and the children from `record`.
fn due_jobs(setup: &Setup, forced: &Forced, record: &mut Record, registered: &[&Listed], minute: u64) -> Vec<Job> {
    let first = match record.last.as_ref().map(|l| l.started_ms / 60_000) {
        Some(last) if last < minute => (last + 1).max(minute + 1 - CATCH_UP_MINUTES),
        _ => minute,
    };
    let mut backlog: Vec<String> = std::mem::take(&mut record.backlog);
    for child in std::mem::take(&mut record.children) {
        if let Ok(activation) = setup.client.get_activation(&child) {
            let result = &activation["response"]["result"];
            let more = result["backlog"].as_array().cloned().unwrap_or_default();
            backlog.extend(more.iter().filter_map(|b| b.as_str().map(str::to_string)));
            for (binding, objects) in result["sizes"].as_object().into_iter().flatten() {
                memory::remember(&mut record.sizes, binding, objects.as_u64());
            }
        }
    }
    let in_backlog: BTreeSet<&str> = backlog.iter().map(String::as_str).collect();
    let mut due: Vec<(u64, Job)> = Vec::new();
    for l in registered {
        let Some(r) = &l.registration else { continue };
        if r.paused {
            continue;
        }
        let order = if in_backlog.contains(l.binding.as_str()) {
            0
        } else if forced.includes(&r.trigger) || r.due_between(first, minute) {
            // A new order every minute, so no trigger is always last.
            1 + stable_hash(&format!("{minute}/{}", l.binding)) / 2
        } else {
            continue;
        };
        let job = Job {
            binding: l.binding.clone(),
            trigger: r.trigger.clone(),
            connection: r.mode == Mode::Connection,
            objects: record.sizes.get(&l.binding).copied().unwrap_or(0),
        };
        due.push((order, job));
    }
    due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.binding.cmp(&b.1.binding)));
    due.into_iter().map(|(_, j)| j).collect()
}

/// How many activations: enough for the window at the last tick's pace, for the
/// connection-mode triggers, and for the large snapshots' polls to fit in memory, within the
/// concurrency budget.
fn parts_for(setup: &Setup, record: &Record, due: &[Job]) -> usize {
    let polls = due.iter().filter(|j| !j.connection).count() as u64;
    let connections = due.len() as u64 - polls;
    let ms_per_poll = record.last.as_ref().map_or(0, |l| l.ms_per_poll);
    let window = setup.left().as_millis() as u64;
    let usable = (window * 4 / 5).max(1);
    let for_polls = (polls * ms_per_poll / POLL_THREADS as u64).div_ceil(usable).max(1);
    let for_connections = connections.div_ceil(CONNECTIONS_PER_ACTIVATION as u64).max(1);
    // Large snapshots whose polls do not fit in one activation's memory together.
    let heavy_kib: u64 = due.iter().filter(|j| !j.connection && j.objects > 0).map(Job::kib).sum();
    let for_memory = heavy_kib.div_ceil(setup.budgets.poll_memory_kib().max(1)).max(1);
    for_polls.max(for_connections).max(for_memory).min(u64::from(setup.budgets.concurrency)).max(1) as usize
}

/// The namespace's budgets of the tick's minute, shared among its activations.
struct Shares {
    /// The minute the tick started in.
    minute: u64,
    /// What an earlier tick spent in this minute: fires, invocations.
    carried: (u32, u32),
    /// The tick's activations: this one and its fan-out.
    parts: usize,
    /// Each activation's share.
    limits: NamespaceLimits,
}

impl Shares {
    /// What an earlier tick spent in this minute, then this tick and its fan-out.
    fn new(setup: &Setup, record: &Record, minute: u64, parts: usize) -> Shares {
        let limits = setup.budgets.limits;
        let carried =
            if record.spent_minute == minute { (record.spent_fires, record.spent_invocations) } else { (0, 0) };
        let share = |total: u32, spent: u32| total.saturating_sub(spent) / parts as u32;
        let limits = NamespaceLimits {
            fires_per_minute: share(limits.fires_per_minute, carried.0),
            invocations_per_minute: share(limits.invocations_per_minute, carried.1 + parts as u32),
            burst: (limits.burst / parts as u32).max(1),
        };
        Shares { minute, carried, parts, limits }
    }

    /// Records what the minute has spent now: this activation's fires and invocations (`own`),
    /// and the whole share of each of the `children` (they have not finished).
    fn account(&self, record: &mut Record, own: Spent, children: usize) {
        let now_minute = now_ms() / 60_000;
        let (fires_now, invocations_now) = if own.minute == now_minute { (own.fires, own.invocations) } else { (0, 0) };
        let same = now_minute == self.minute;
        let base = if same { (self.carried.0, self.carried.1 + self.parts as u32) } else { (0, 0) };
        let children_fires = if same { self.limits.fires_per_minute * children as u32 } else { 0 };
        record.spent_minute = now_minute;
        record.spent_fires = base.0 + fires_now + children_fires;
        record.spent_invocations = base.1 + invocations_now;
    }
}

/// `due` dealt round `parts` portions: connection-mode jobs, polls of large snapshots and the
/// other polls separately.
fn deal(due: &[Job], parts: usize) -> Vec<Vec<Job>> {
    let mut portions: Vec<Vec<Job>> = vec![Vec::new(); parts];
    let (mut p, mut c, mut h) = (0, 0, 0);
    for job in due.iter().cloned() {
        // Connection-mode jobs, polls of large snapshots and the other polls are dealt round
        // the parts separately, so each part gets its share of each.
        let slot = if job.connection {
            &mut c
        } else if job.objects > 0 {
            &mut h
        } else {
            &mut p
        };
        portions[*slot % parts].push(job);
        *slot += 1;
    }
    portions
}

/// Hands every portion but the first to a `poll` activation of its own (`tickPart`, with
/// `limits`); a portion that cannot be handed out is polled here. This activation's jobs, and
/// the others' activation ids.
fn fan_out(setup: &Setup, mut portions: Vec<Vec<Job>>, limits: &NamespaceLimits) -> (Vec<Job>, Vec<String>) {
    let mut own = portions.remove(0);
    let mut children = Vec::new();
    for jobs in portions {
        let part = Part {
            parent: setup.ctx.activation_id.clone(),
            jobs: jobs.clone(),
            fires: limits.fires_per_minute,
            invocations: limits.invocations_per_minute,
            burst: limits.burst,
        };
        match setup.client.invoke(&setup.scheduler.poll, &json!({ "tickPart": part }), false) {
            Ok(answer) => children.push(answer["activationId"].as_str().unwrap_or_default().to_string()),
            Err(e) => {
                crate::runtime::log(&format!("tick: fanning out {} triggers: {e}; polling them here", jobs.len()));
                own.extend(jobs);
            }
        }
    }
    (own, children)
}

/// Writes the record for the next tick. No active trigger twice in a row: the scheduler goes
/// instead, unless a CREATE registered one meanwhile (it registers before it makes sure of the
/// scheduler, so listing again after the removal sees it).
fn close(setup: &Setup, mut record: Record, mut result: Value, active: usize) -> Result<Value, ActionError> {
    let (client, s) = (&setup.client, &setup.scheduler);
    record.idle_ticks = if active == 0 { record.idle_ticks + 1 } else { 0 };
    if record.idle_ticks >= 2 {
        let alarms = scheduler::alarms_of(&record, &super::entities::default_alarms());
        match scheduler::remove_unless_needed(client, s, &alarms) {
            Ok(true) => {
                result["removed"] = json!(true);
                return Ok(result);
            }
            Ok(false) => record.idle_ticks = 0,
            Err(e) => return Err(ActionError::new(format!("tick: making the scheduler again after removing it: {e}"))),
        }
    }
    if let Err(e) = scheduler::write_record(client, s, &record) {
        crate::runtime::log(&format!("tick: writing the record: {e}"));
        result["recordError"] = json!(e.to_string());
    }
    Ok(result)
}

/// Triggers a manual tick is told to poll whatever their schedule (`due`: `all`, or a list of
/// trigger names).
enum Forced {
    None,
    All,
    Some(BTreeSet<String>),
}

impl Forced {
    /// Reads `due`; one of another type, or a list with a name that is not a string, is an
    /// error naming it (before the tick claims its minute).
    fn from_params(params: &Params) -> Result<Forced, ParamError> {
        const EXPECTED: &str = "all, or trigger names (a list, or a string separated by commas)";
        Ok(match params.raw("due") {
            None => Forced::None,
            Some(Value::String(s)) if s == "all" => Forced::All,
            Some(Value::Array(names)) => Forced::Some(
                names
                    .iter()
                    .map(|n| n.as_str().map(str::to_string).ok_or_else(|| ParamError::invalid("due", EXPECTED, n)))
                    .collect::<Result<_, _>>()?,
            ),
            Some(Value::String(s)) => Forced::Some(s.split(',').map(|n| n.trim().to_string()).collect()),
            Some(other) => return Err(ParamError::invalid("due", EXPECTED, other)),
        })
    }

    fn includes(&self, trigger: &str) -> bool {
        match self {
            Forced::None => false,
            Forced::All => true,
            Forced::Some(names) => {
                names.contains(trigger) || trigger.rsplit('/').next().is_some_and(|short| names.contains(short))
            }
        }
    }
}

/// Polls `jobs` within the window: connection-mode ones on a thread each until the window's
/// end, the others on `POLL_THREADS` threads. Returns how each ended and the jobs no thread had
/// time for.
fn run_jobs(setup: &Setup, jobs: Vec<Job>, pace: &NamespacePace, ext: &Extensions) -> (Vec<Outcome>, Vec<Job>) {
    let (connections, polls): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.connection);
    let mut left = Vec::new();
    let mut held = connections;
    if held.len() > CONNECTIONS_PER_ACTIVATION {
        left.extend(held.split_off(CONNECTIONS_PER_ACTIVATION));
    }
    let queue = Mutex::new(VecDeque::from(polls));
    let outcomes = Mutex::new(Vec::new());
    let gate = MemoryGate::new(setup.budgets.poll_memory_kib());
    std::thread::scope(|scope| {
        for job in held {
            let (outcomes, setup) = (&outcomes, setup);
            scope.spawn(move || {
                let outcome = run_job(setup, job, None, pace, ext);
                lock(outcomes).push(outcome);
            });
        }
        let threads = lock(&queue).len().min(POLLS_IN_PROGRESS);
        for _ in 0..threads {
            let (queue, outcomes, setup, gate) = (&queue, &outcomes, setup, &gate);
            scope.spawn(move || loop {
                let _slot = pace.work_slot();
                if setup.left() < MIN_POLL_TIME {
                    return;
                }
                // A poll starts when its memory estimate fits beside the others'.
                let Some((job, _admitted)) = gate.take(queue, Job::kib, setup.work_end - MIN_POLL_TIME) else {
                    return;
                };
                let outcome = run_job(setup, job, Some(SystemTime::now() + POLL_TIME), pace, ext);
                lock(outcomes).push(outcome);
            });
        }
    });
    left.extend(queue.into_inner().unwrap_or_else(|e| e.into_inner()));
    (outcomes.into_inner().unwrap_or_else(|e| e.into_inner()), left)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One trigger's poll: its config from its binding, then the poll itself until the window's
/// end, listing until `list_until` at the latest, within the namespace's pace.
fn run_job(setup: &Setup, job: Job, list_until: Option<SystemTime>, pace: &NamespacePace, ext: &Extensions) -> Outcome {
    let began = now_ms();
    let binding = QualifiedName::new(&setup.ctx.namespace, None, &job.binding);
    let result = match read_binding(&setup.client, &binding, "feed config") {
        // Deleted since the listing: nothing to poll.
        Ok(None) => json!({ "status": "gone", "error": format!("{} was deleted", binding) }),
        Ok(Some(doc)) => match scheduler::params_of(&doc) {
            Ok(config) => {
                crate::runtime::remember_param_secrets(&config);
                let ctx = Context { deadline: Some(setup.work_end), ..setup.ctx.clone() };
                let share = Share { pace, list_until: list_until.unwrap_or(setup.work_end) };
                match poll_once(&ctx, config, ext, Some(&share)) {
                    Ok(v) => v,
                    Err(e) => json!({ "status": PollOutcome::Error, "error": e.message }),
                }
            }
            Err(e) => json!({ "status": PollOutcome::Error, "error": e.to_string() }),
        },
        Err(e) => json!({ "status": PollOutcome::Error, "error": e.message }),
    };
    let mut result = result;
    result["trigger"] = json!(job.trigger);
    Outcome { job, result, ms: now_ms().saturating_sub(began) }
}

/// What each poll said of its snapshot's size (`tracked`; `None` from a poll that did not).
fn sizes_of(outcomes: &[Outcome]) -> Vec<(String, Option<u64>)> {
    outcomes.iter().map(|o| (o.job.binding.clone(), o.result["tracked"].as_u64())).collect()
}

/// Bindings the next tick polls whatever their schedule: not polled for lack of time, or left
/// with events pending, a resumable listing or the lease held by another poll.
fn backlog_of(outcomes: &[Outcome], left: &[Job]) -> Vec<String> {
    let mut out: Vec<String> = left.iter().map(|j| j.binding.clone()).collect();
    for o in outcomes {
        let status = o.result["status"].as_str().unwrap_or_default();
        let pending = o.result["pending"].as_u64().unwrap_or(0);
        let again =
            [PollOutcome::Partial, PollOutcome::Busy, PollOutcome::Conflict].iter().any(|s| s.as_str() == status);
        if again || pending > 0 {
            out.push(o.job.binding.clone());
        }
    }
    out
}

/// A result's `polls` (each poll's own result, naming its trigger; only the ones that did not
/// end `ok` beyond [`POLLS_IN_RESULT`]) and `notPolled`.
fn results(outcomes: &[Outcome], left: &[Job]) -> Value {
    let all = outcomes.len() <= POLLS_IN_RESULT;
    let polls: Vec<&Value> = outcomes.iter().map(|o| &o.result).filter(|r| all || r["status"] != "ok").collect();
    json!({
        "polled": outcomes.len(),
        "polls": polls,
        "notPolled": left.iter().map(|j| &j.trigger).collect::<Vec<_>>(),
    })
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    setup: &Setup,
    started: u64,
    outcomes: &[Outcome],
    left: &[Job],
    listed: &[Listed],
    active: usize,
    legacy: usize,
    due: usize,
    children: &[String],
) -> TickSummary {
    let registered = listed.iter().filter(|l| l.registration.is_some()).count() as u64;
    let count =
        |outcome: PollOutcome| outcomes.iter().filter(|o| o.result["status"] == outcome.as_str()).count() as u64;
    let sum = |field: &str| outcomes.iter().map(|o| o.result[field].as_u64().unwrap_or(0)).sum::<u64>();
    // The time a poll works: those that had something to fire may also have waited for their turn.
    let quiet: Vec<u64> = outcomes
        .iter()
        .filter(|o| {
            !o.job.connection && o.result["fired"].as_u64() == Some(0) && o.result["pending"].as_u64() == Some(0)
        })
        .map(|o| o.ms)
        .collect();
    let timed =
        if quiet.is_empty() { outcomes.iter().filter(|o| !o.job.connection).map(|o| o.ms).collect() } else { quiet };
    let problems = outcomes
        .iter()
        .filter_map(|o| o.result["error"].as_str().map(|e| format!("{}: {e}", o.job.trigger)))
        .take(PROBLEMS_KEPT)
        .collect();
    TickSummary {
        activation: setup.ctx.activation_id.clone(),
        started_ms: started,
        duration_ms: now_ms().saturating_sub(started),
        registered,
        paused: registered - active as u64,
        legacy: legacy as u64,
        due: due as u64,
        polled: outcomes.len() as u64,
        not_polled: left.len() as u64,
        errors: count(PollOutcome::Error),
        busy: count(PollOutcome::Busy),
        fired: sum("fired"),
        pending: sum("pending"),
        connection: outcomes.iter().filter(|o| o.job.connection).count() as u64,
        children: children.len() as u64,
        ms_per_poll: if timed.is_empty() { 0 } else { timed.iter().sum::<u64>() / timed.len() as u64 },
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `due` of a tick by hand: `all`, names in a list or separated by commas; anything else is
    /// an error naming the parameter, not a tick that forces nothing.
    #[test]
    fn due_names_triggers_and_a_bad_one_is_an_error_naming_it() {
        let forced = |due: Value| Forced::from_params(&Params::from_value(json!({ "due": due })).unwrap());
        assert!(matches!(Forced::from_params(&Params::from_value(json!({})).unwrap()), Ok(Forced::None)));
        assert!(matches!(forced(json!("all")), Ok(Forced::All)));
        let names = |f: Result<Forced, ParamError>| match f {
            Ok(Forced::Some(names)) => names.into_iter().collect::<Vec<_>>(),
            _ => panic!("not a list of names"),
        };
        assert_eq!(names(forced(json!("a, b"))), ["a", "b"]);
        assert_eq!(names(forced(json!(["b", "a"]))), ["a", "b"]);
        for bad in [json!(5), json!(true), json!({ "a": 1 }), json!(["a", 1])] {
            let e = forced(bad.clone()).err().unwrap_or_else(|| panic!("{bad} was taken"));
            assert_eq!(e.name, "due", "{bad}");
        }
    }

    #[test]
    fn a_part_survives_its_parameter_and_a_bad_one_names_what_is_wrong() {
        let job = |b: &str, c: bool| Job { binding: b.into(), trigger: format!("/ns/{b}"), connection: c, objects: 0 };
        let part = Part {
            parent: "a1".into(),
            jobs: vec![job("t", false), job("u", true)],
            fires: 2,
            invocations: 3,
            burst: 4,
        };
        let back = Part::from_value(&serde_json::to_value(&part).unwrap()).unwrap();
        assert_eq!(
            (back.parent, back.jobs, back.fires, back.invocations, back.burst),
            (part.parent, part.jobs, part.fires, part.invocations, part.burst)
        );
        assert_eq!(
            Part::from_value(&json!({"parent": "a", "jobs": [], "fires": -1})).unwrap_err(),
            "'fires' is not a count"
        );
        assert!(Part::from_value(
            &json!({"parent": "a", "jobs": [{"trigger": "t"}], "fires": 1, "invocations": 1, "burst": 1})
        )
        .unwrap_err()
        .contains("'binding'"));
        assert!(Part::from_value(&json!("junk")).is_err());
    }
}
