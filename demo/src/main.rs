//! ebb-demo: an HTTP API service whose handlers allocate the way real ones do,
//! so that allocators can be compared on the RSS a service keeps over time.
//!
//! Endpoints (the load script `load.lua` drives them):
//!   POST /ingest/<key>?tier=long|short  read a form body, parse it into owned
//!                                        fields, render a JSON record, cache it
//!   GET  /item/<key>                     a cached record in an envelope (a miss
//!                                        builds one and caches it short-lived)
//!   GET  /search?n=N                     N result objects, sorted and rendered
//!   GET  /report?mb=M                    a rare request with an M MiB working set
//!   GET  /stats                          cache size and RSS as JSON (for the runner)
//!   POST /collect                        give free memory back now: ebb::collect(true)
//!                                        with ebb, malloc_trim(0) otherwise (diagnostics)
//!   GET  /metrics                        ebb's Prometheus text (with `--features ebb`),
//!                                        otherwise the process's RSS
//!   GET  /debug/pprof/heap               ebb's heap profile (with `--features ebb` and
//!                                        EBB_PROF=1, or after ?start=1): the live heap by
//!                                        call site, for `google-pprof --text DEMO FILE`
//!
//! Memory shape: the cache is shared by every worker thread and bounded by a
//! byte budget. Records inserted by one request are evicted or expired by
//! requests on other threads (frees are cross-thread). Long-tier records live
//! until the budget pushes them out (tens of seconds to minutes), short-tier
//! records expire after `--short-ttl-ms`, and every request's own buffers
//! (bodies, parsed fields, responses) live for a few milliseconds.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Method, Request, Response, Server, StatusCode};

#[cfg(feature = "ebb")]
#[global_allocator]
static GLOBAL: ebb::Ebb = ebb::Ebb;

// ---- configuration -----------------------------------------------------------

struct Config {
    port: u16,
    workers: usize,
    cache_bytes: usize,
    short_ttl: Duration,
    shards: usize,
    /// ebb build only: a worker about to sleep calls ebb::collect(false), at
    /// most once per this many ms (0: never).
    collect_idle_ms: u64,
}

const USAGE: &str = "usage: ebb-demo [--port 8080] [--workers 8] [--cache-mb 64] \
                     [--short-ttl-ms 2000] [--shards 16] [--collect-idle-ms 0]";

fn parse_args() -> Config {
    let mut config = Config {
        port: 8080,
        workers: 8,
        cache_bytes: 64 << 20,
        short_ttl: Duration::from_millis(2000),
        shards: 16,
        collect_idle_ms: 0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        let value = match (args[i].as_str(), value) {
            ("-h" | "--help", _) => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            (_, Some(v)) => v,
            (flag, None) => {
                eprintln!("ebb-demo: {flag} needs a number\n{USAGE}");
                std::process::exit(2);
            }
        };
        match args[i].as_str() {
            "--port" => config.port = value as u16,
            "--workers" => config.workers = (value as usize).max(1),
            "--cache-mb" => config.cache_bytes = (value as usize) << 20,
            "--short-ttl-ms" => config.short_ttl = Duration::from_millis(value),
            "--shards" => config.shards = (value as usize).max(1),
            "--collect-idle-ms" => config.collect_idle_ms = value,
            flag => {
                eprintln!("ebb-demo: unknown option {flag}\n{USAGE}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    config
}

// ---- the shared cache --------------------------------------------------------

/// Bookkeeping cost charged per record on top of its bytes (map slot, queue
/// slot, Vec header), so that many tiny records still count against the budget.
const RECORD_OVERHEAD: usize = 64;

struct Record {
    body: Vec<u8>,
    long_lived: bool,
    /// Which insert this is: queue slots of a replaced record are skipped.
    generation: u64,
}

impl Record {
    fn cost(&self) -> usize {
        self.body.capacity() + RECORD_OVERHEAD
    }
}

/// One shard of the cache. The two tiers have their own halves of the
/// budget, so a burst of short-lived records never pushes out the long ones.
#[derive(Default)]
struct Shard {
    records: HashMap<u64, Record>,
    /// (key, generation), oldest first: evicted when the tier is over budget.
    long_lived: VecDeque<(u64, u64)>,
    /// (key, generation, expiry), oldest first: one TTL, so also expiry order.
    short_lived: VecDeque<(u64, u64, Instant)>,
    long_bytes: usize,
    short_bytes: usize,
}

impl Shard {
    fn tier_bytes(&mut self, long_lived: bool) -> &mut usize {
        if long_lived {
            &mut self.long_bytes
        } else {
            &mut self.short_bytes
        }
    }

    fn add(&mut self, key: u64, record: Record) -> Option<Vec<u8>> {
        *self.tier_bytes(record.long_lived) += record.cost();
        let old = self.records.insert(key, record)?;
        *self.tier_bytes(old.long_lived) -= old.cost();
        Some(old.body)
    }

    fn remove_if_current(&mut self, key: u64, generation: u64) -> Option<Vec<u8>> {
        match self.records.get(&key) {
            Some(r) if r.generation == generation => {
                let record = self.records.remove(&key)?;
                *self.tier_bytes(record.long_lived) -= record.cost();
                Some(record.body)
            }
            _ => None,
        }
    }

    /// Removes expired short-lived records, then the oldest records of each
    /// tier until it is within `tier_budget`. The bodies go to `evicted`, to
    /// be dropped once the lock is released.
    fn evict(&mut self, now: Instant, tier_budget: usize, evicted: &mut Vec<Vec<u8>>) {
        while let Some(&(key, generation, expiry)) = self.short_lived.front() {
            if expiry > now && self.short_bytes <= tier_budget {
                break;
            }
            self.short_lived.pop_front();
            evicted.extend(self.remove_if_current(key, generation));
        }
        while self.long_bytes > tier_budget {
            match self.long_lived.pop_front() {
                Some((key, generation)) => evicted.extend(self.remove_if_current(key, generation)),
                None => break,
            }
        }
    }
}

struct Cache {
    shards: Vec<Mutex<Shard>>,
    /// Bytes each tier of each shard may hold: half the budget per tier.
    tier_budget: usize,
    short_ttl: Duration,
    next_generation: AtomicU64,
}

impl Cache {
    fn new(config: &Config) -> Cache {
        Cache {
            shards: (0..config.shards).map(|_| Mutex::new(Shard::default())).collect(),
            tier_budget: config.cache_bytes / 2 / config.shards,
            short_ttl: config.short_ttl,
            next_generation: AtomicU64::new(1),
        }
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        &self.shards[(mix64(key) % self.shards.len() as u64) as usize]
    }

    fn insert(&self, key: u64, body: Vec<u8>, long_lived: bool) {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut evicted = Vec::new();
        {
            let mut shard = self.shard(key).lock().unwrap();
            evicted.extend(shard.add(key, Record { body, long_lived, generation }));
            if long_lived {
                shard.long_lived.push_back((key, generation));
            } else {
                shard.short_lived.push_back((key, generation, now + self.short_ttl));
            }
            shard.evict(now, self.tier_budget, &mut evicted);
        }
        // Most of these were allocated by other workers: cross-thread frees.
        drop(evicted);
    }

    fn get(&self, key: u64) -> Option<Vec<u8>> {
        let shard = self.shard(key).lock().unwrap();
        shard.records.get(&key).map(|r| r.body.clone())
    }

    /// Drops expired short-lived records everywhere (the periodic sweeper),
    /// so an idle service lets them go too.
    fn sweep(&self) {
        let now = Instant::now();
        for shard in &self.shards {
            let mut evicted = Vec::new();
            shard.lock().unwrap().evict(now, self.tier_budget, &mut evicted);
            drop(evicted);
        }
    }

    /// (records, bytes charged against the budget)
    fn size(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock().unwrap();
            (n + s.records.len(), b + s.long_bytes + s.short_bytes)
        })
    }
}

// ---- small helpers -----------------------------------------------------------

/// splitmix64's finaliser: a good 64-bit hash of an integer.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A tiny deterministic generator for synthetic content.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix64(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn query_param(req: &Request<Body>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

fn json(body: String) -> Response<Body> {
    respond(StatusCode::OK, "application/json", body)
}

// ---- records: parse a form body, render JSON -----------------------------------

/// A parsed form field, owned like a deserialised struct would be.
struct Field {
    name: String,
    value: String,
}

fn parse_form(body: &[u8]) -> Vec<Field> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Field { name: name.to_string(), value: value.to_string() }
        })
        .collect()
}

/// Renders a record the naive way: a String grown push by push.
fn render_record(key: u64, fields: &[Field]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{{\"id\":{key},\"received_ms\":{},\"field_count\":{},\"fields\":{{", now_ms(), fields.len());
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, &field.name);
        out.push(':');
        push_json_string(&mut out, &field.value);
    }
    out.push_str("}}");
    out
}

/// What a cache miss builds: a record of a size derived from the key.
fn synthesize_record(key: u64) -> String {
    let mut rng = Rng(mix64(key));
    let count = 4 + rng.below(120) as usize;
    let fields: Vec<Field> = (0..count)
        .map(|i| Field {
            name: format!("attr{i}"),
            value: "x".repeat(1 + rng.below(48) as usize),
        })
        .collect();
    render_record(key, &fields)
}

fn envelope(key: u64, cached: bool, record: &[u8]) -> String {
    let mut out = String::with_capacity(record.len() + 64);
    let _ = write!(out, "{{\"id\":{key},\"cached\":{cached},\"record\":");
    out.push_str(&String::from_utf8_lossy(record));
    out.push('}');
    out
}

// ---- handlers ------------------------------------------------------------------

struct State {
    cache: Cache,
    requests: AtomicU64,
}

fn key_from_path(path: &str, prefix: &str) -> Option<u64> {
    path.strip_prefix(prefix)?.parse().ok()
}

async fn ingest(req: Request<Body>, key: u64, state: &State) -> Response<Body> {
    let long_lived = query_param(&req, "tier").as_deref() == Some("long");
    let body = match hyper::body::to_bytes(req.into_body()).await {
        Ok(b) => b,
        Err(e) => return respond(StatusCode::BAD_REQUEST, "text/plain", format!("body: {e}\n")),
    };
    let fields = parse_form(&body);
    let record = render_record(key, &fields);
    let ack = format!(
        "{{\"id\":{key},\"fields\":{},\"received\":{},\"stored\":{},\"tier\":\"{}\"}}",
        fields.len(),
        body.len(),
        record.len(),
        if long_lived { "long" } else { "short" }
    );
    state.cache.insert(key, record.into_bytes(), long_lived);
    json(ack)
}

fn item(key: u64, state: &State) -> Response<Body> {
    match state.cache.get(key) {
        Some(record) => json(envelope(key, true, &record)),
        None => {
            let record = synthesize_record(key);
            let response = envelope(key, false, record.as_bytes());
            state.cache.insert(key, record.into_bytes(), false);
            json(response)
        }
    }
}

struct SearchHit {
    id: u64,
    title: String,
    score: f64,
    tags: Vec<String>,
}

fn search(n: usize, seed: u64) -> Response<Body> {
    const WORDS: [&str; 12] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima",
    ];
    let mut rng = Rng(seed);
    let mut hits: Vec<SearchHit> = (0..n)
        .map(|_| {
            let words = 2 + rng.below(10) as usize;
            let title = (0..words)
                .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ");
            let tags = (0..rng.below(6)).map(|t| format!("tag-{}-{t}", rng.below(1000))).collect();
            SearchHit { id: rng.next() >> 16, title, score: rng.below(1_000_000) as f64 / 1e4, tags }
        })
        .collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = String::new();
    let _ = write!(out, "{{\"count\":{n},\"hits\":[");
    for (i, hit) in hits.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"id\":{},\"score\":{:.4},\"title\":", hit.id, hit.score);
        push_json_string(&mut out, &hit.title);
        out.push_str(",\"tags\":[");
        for (j, tag) in hit.tags.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_json_string(&mut out, tag);
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    json(out)
}

/// The rare expensive request: an export that gathers `mb` MiB of rows in
/// chunks of 16 to 256 KiB, waiting for each 1 MiB "page of rows" as if from
/// a database, plus a snapshot of the cache's keys, then lets it all go.
/// While it waits, its worker serves other requests, whose records land
/// among (and after) its chunks.
async fn report(mb: usize, seed: u64, state: &State) -> Response<Body> {
    let mut rng = Rng(seed);
    let target = mb << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    let mut next_wait = 0;
    while total < target {
        let len = (16 << 10) + rng.below(240 << 10) as usize;
        chunks.push(vec![(rng.next() & 0xff) as u8; len]);
        total += len;
        if total >= next_wait {
            next_wait += 1 << 20;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut keys: Vec<u64> = Vec::new();
    for shard in &state.cache.shards {
        keys.extend(shard.lock().unwrap().records.keys().copied());
    }
    keys.sort_unstable();
    let checksum = chunks.iter().fold(0u64, |acc, c| mix64(acc ^ c[c.len() / 2] as u64 ^ c.len() as u64));
    json(format!(
        "{{\"bytes\":{total},\"chunks\":{},\"keys\":{},\"checksum\":{checksum}}}",
        chunks.len(),
        keys.len()
    ))
}

fn stats(state: &State) -> Response<Body> {
    let (records, bytes) = state.cache.size();
    json(format!(
        "{{\"records\":{records},\"cache_bytes\":{bytes},\"rss_bytes\":{},\"requests\":{},\"allocator\":\"{}\"}}\n",
        rss_bytes(),
        state.requests.load(Ordering::Relaxed),
        if cfg!(feature = "ebb") { "ebb" } else { "system" }
    ))
}

fn metrics(state: &State) -> Response<Body> {
    let (records, bytes) = state.cache.size();
    let mut out = String::new();
    #[cfg(feature = "ebb")]
    out.push_str(&ebb::stats_prometheus());
    #[cfg(not(feature = "ebb"))]
    let _ = writeln!(out, "process_resident_memory_bytes {}", rss_bytes());
    let _ = writeln!(out, "demo_cache_records {records}\ndemo_cache_bytes {bytes}");
    respond(StatusCode::OK, "text/plain; version=0.0.4", out)
}

/// The heap profile, written by ebb to a file and returned as the body
/// (`?start=1` turns sampling on first, `?stop=1` off after).
#[cfg(feature = "ebb")]
fn heap_profile(start: bool, stop: bool) -> Response<Body> {
    if start && ebb::prof::rate().is_none() {
        if let Err(e) = ebb::prof::start(0) {
            return respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n"));
        }
    }
    let path = std::env::temp_dir().join(format!("ebb-demo-{}-{}.heap", std::process::id(), now_ms()));
    let result = ebb::prof::dump(&path).and_then(|_| std::fs::read(&path));
    let _ = std::fs::remove_file(&path);
    if stop {
        ebb::prof::stop();
    }
    match result {
        Ok(body) => respond(StatusCode::OK, "text/plain", body),
        Err(e) => respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("{e}\n")),
    }
}

#[cfg(not(feature = "ebb"))]
fn heap_profile(_start: bool, _stop: bool) -> Response<Body> {
    respond(StatusCode::NOT_FOUND, "text/plain", "heap profiles need --features ebb\n")
}

#[cfg(not(feature = "ebb"))]
extern "C" {
    // glibc's; the preloaded allocators export their own or none (then glibc's
    // runs on an empty heap and does nothing).
    fn malloc_trim(pad: usize) -> i32;
}

fn collect() -> Response<Body> {
    let before = rss_bytes();
    #[cfg(feature = "ebb")]
    ebb::collect(true);
    #[cfg(not(feature = "ebb"))]
    // SAFETY: no pointers; malloc_trim only walks the allocator's own state.
    unsafe {
        malloc_trim(0);
    }
    json(format!("{{\"rss_before\":{before},\"rss_after\":{}}}\n", rss_bytes()))
}

async fn handle(req: Request<Body>, state: Arc<State>) -> Result<Response<Body>, Infallible> {
    let seq = state.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_string();
    let number = |name: &str, default: usize, max: usize| {
        query_param(&req, name).and_then(|v| v.parse().ok()).unwrap_or(default).min(max)
    };
    let response = match (req.method(), path.as_str()) {
        (&Method::POST, p) if p.starts_with("/ingest/") => match key_from_path(p, "/ingest/") {
            Some(key) => ingest(req, key, &state).await,
            None => respond(StatusCode::BAD_REQUEST, "text/plain", "bad key\n"),
        },
        (&Method::GET, p) if p.starts_with("/item/") => match key_from_path(p, "/item/") {
            Some(key) => item(key, &state),
            None => respond(StatusCode::BAD_REQUEST, "text/plain", "bad key\n"),
        },
        (&Method::GET, "/search") => search(number("n", 50, 100_000), seq),
        (&Method::GET, "/report") => report(number("mb", 32, 4096), seq, &state).await,
        (&Method::GET, "/stats") => stats(&state),
        (&Method::GET, "/metrics") => metrics(&state),
        (&Method::GET, "/debug/pprof/heap") => {
            heap_profile(query_param(&req, "start").is_some(), query_param(&req, "stop").is_some())
        }
        (&Method::POST, "/collect") => collect(),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    };
    Ok(response)
}

fn main() {
    let config = parse_args();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(config.workers).enable_all();
    if config.collect_idle_ms > 0 {
        collect_when_idle(&mut builder, config.collect_idle_ms);
    }
    let runtime = builder.build().expect("tokio runtime");
    runtime.block_on(serve(config));
}

/// An experiment, not the default: ebb gives back a thread's empty pages and
/// merges the frees other threads made into its pages only when that thread
/// calls into it; a tokio worker that goes idle never does. Here a worker
/// about to park asks ebb to do that (rate-limited: workers park often).
#[cfg(feature = "ebb")]
fn collect_when_idle(builder: &mut tokio::runtime::Builder, every_ms: u64) {
    use std::cell::Cell;
    thread_local!(static LAST_COLLECT: Cell<Option<Instant>> = const { Cell::new(None) });
    let every = Duration::from_millis(every_ms);
    builder.on_thread_park(move || {
        LAST_COLLECT.with(|last| {
            let now = Instant::now();
            if !matches!(last.get(), Some(t) if now.duration_since(t) < every) {
                last.set(Some(now));
                ebb::collect(false);
            }
        })
    });
}

#[cfg(not(feature = "ebb"))]
fn collect_when_idle(_: &mut tokio::runtime::Builder, _: u64) {
    eprintln!("ebb-demo: --collect-idle-ms needs the ebb build (cargo build --features ebb)");
    std::process::exit(2);
}

async fn serve(config: Config) {
    let state = Arc::new(State { cache: Cache::new(&config), requests: AtomicU64::new(0) });

    // Expired short-lived records go even when no request comes in.
    let sweeper_state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            sweeper_state.cache.sweep();
        }
    });

    let make_service = make_service_fn(move |_conn| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(service_fn(move |req| handle(req, state.clone()))) }
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], config.port));
    let server = Server::bind(&addr).serve(make_service);
    eprintln!(
        "ebb-demo: listening on http://{addr} ({} workers, cache {} MiB, allocator {})",
        config.workers,
        config.cache_bytes >> 20,
        if cfg!(feature = "ebb") { "ebb" } else { "system" }
    );
    if let Err(e) = server.await {
        eprintln!("ebb-demo: server error: {e}");
        std::process::exit(1);
    }
}
