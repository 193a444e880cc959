//! Hybrid search latency over 100 000 live chunks of one owner, for SQLite and PostgreSQL.
//!
//! Loads 200 documents of 500 chunks each (~150 words per chunk, drawn from a fixed 8 000-word
//! pseudo-vocabulary with a skewed distribution) through the `Store` trait — `create_document`,
//! `stage_chunks`, `put_embeddings` (deterministic 384-d unit vectors from the `HashEmbedder`),
//! `publish_staged` — then times `navigator_pipeline::search::search` (limit 10) for 200 hybrid
//! queries drawn from the same vocabulary, plus vector-only and keyword-only runs so the two
//! halves of the hybrid can be told apart. Vector-only latency is also measured after the first
//! 10 000 chunks, to show how it scales with the corpus.
//!
//! Run with `bench/run.sh` (release build). `SEARCH_BENCH_CHUNKS` overrides the corpus size
//! (default 100000, in documents of 500 chunks). PostgreSQL runs when
//! `NAVIGATOR_TEST_DATABASE_URL` is set, in a fresh database.

use navigator_domain::{
    ChunkId, Clock, DocumentId, JobId, MediaType, OwnerId, Sha256Hex, SystemClock,
};
use navigator_embed::{Embedder, HashEmbedder};
use navigator_pipeline::search::{DEFAULT_RRF_K, SearchMode, search};
use navigator_store::postgres::PgStore;
use navigator_store::sqlite::SqliteStore;
use navigator_store::test_databases::{fresh_postgres_database, postgres_admin_url};
use navigator_store::{Embedding, NewChunk, NewDocument, OwnerScope, SearchQuery, Store};
use std::time::{Duration, Instant};

const CHUNKS_PER_DOCUMENT: usize = 500;
const WORDS_PER_CHUNK: usize = 150;
const VOCABULARY: usize = 8000;
const CHECKPOINT: usize = 10_000;
const HYBRID_QUERIES: usize = 200;
const SINGLE_MODE_QUERIES: usize = 100;
const SYLLABLES: [&str; 20] = [
    "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "ga", "vu", "bel", "cor", "fen", "hal",
    "jun", "mar", "nor", "sil", "tev",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A word index skewed towards the common end (a rough Zipf stand-in).
    fn word(&mut self) -> usize {
        ((VOCABULARY as f64) * self.unit().powf(2.5)) as usize % VOCABULARY
    }
}

fn word(i: usize) -> String {
    format!(
        "{}{}{}",
        SYLLABLES[i % 20],
        SYLLABLES[(i / 20) % 20],
        SYLLABLES[(i / 400) % 20]
    )
}

fn chunk_text(rng: &mut Rng, vocabulary: &[String]) -> String {
    let mut words = Vec::with_capacity(WORDS_PER_CHUNK);
    for _ in 0..WORDS_PER_CHUNK {
        words.push(vocabulary[rng.word()].as_str());
    }
    words.join(" ")
}

fn chunk_count() -> usize {
    std::env::var("SEARCH_BENCH_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

async fn load_document(
    store: &dyn Store,
    embedder: &HashEmbedder,
    owner: &OwnerId,
    index: usize,
    rng: &mut Rng,
    vocabulary: &[String],
) -> anyhow::Result<()> {
    let content = format!("search bench document {index}");
    let created = store
        .create_document(
            NewDocument {
                id: DocumentId::new_v7(),
                job_id: JobId::new_v7(),
                owner: owner.clone(),
                filename: format!("doc-{index}.txt"),
                media_type: MediaType::Text,
                bytes: content.len() as u64,
                sha256: Sha256Hex::of(content.as_bytes()),
                metadata: serde_json::json!({}),
                idempotency_key: None,
            },
            SystemClock.now(),
        )
        .await?;
    let document = created.document.id;
    let chunks: Vec<NewChunk> = (0..CHUNKS_PER_DOCUMENT as u32)
        .map(|ord| {
            let text = chunk_text(rng, vocabulary);
            NewChunk {
                id: ChunkId::derive(document, "bench", "1", ord),
                ord,
                text_sha256: Sha256Hex::of(text.as_bytes()),
                page_start: ord / 4 + 1,
                page_end: ord / 4 + 1,
                section: format!("Section {}", ord / 20),
                token_count: WORDS_PER_CHUNK as u32 + 2,
                chunker: "bench".to_owned(),
                chunker_version: "1".to_owned(),
                text,
            }
        })
        .collect();
    store.stage_chunks(document, owner, &chunks).await?;
    let embeddings: Vec<Embedding> = chunks
        .iter()
        .map(|c| Embedding {
            text_sha256: c.text_sha256.clone(),
            vector: embedder.embed_one(&c.text),
        })
        .collect();
    store
        .put_embeddings(embedder.model_id(), &embeddings)
        .await?;
    let live = store
        .publish_staged(document, embedder.model_id(), SystemClock.now())
        .await?;
    anyhow::ensure!(
        live as usize == CHUNKS_PER_DOCUMENT,
        "published {live} chunks"
    );
    Ok(())
}

fn query_text(rng: &mut Rng, vocabulary: &[String]) -> String {
    let words = 2 + (rng.next() % 3) as usize;
    (0..words)
        .map(|_| vocabulary[rng.word()].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn measure(
    label: &str,
    store: &dyn Store,
    embedder: &HashEmbedder,
    owner: &OwnerId,
    mode: SearchMode,
    queries: usize,
    vocabulary: &[String],
) -> anyhow::Result<()> {
    let scope = OwnerScope::Owner(owner.clone());
    let mut rng = Rng(0x5eed_0000 + queries as u64);
    let texts: Vec<String> = (0..queries + 5)
        .map(|_| query_text(&mut rng, vocabulary))
        .collect();
    let mut took = Vec::with_capacity(queries);
    let mut hits = 0usize;
    for (i, text) in texts.iter().enumerate() {
        let query = SearchQuery {
            scope: &scope,
            text,
            document_ids: None,
            limit: 10,
        };
        let started = Instant::now();
        let found = search(store, embedder, &query, mode, DEFAULT_RRF_K).await?;
        let elapsed = started.elapsed();
        // The first 5 queries warm caches and are not counted.
        if i >= 5 {
            took.push(elapsed);
            hits += found.len();
        }
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
    let mean = took.iter().sum::<Duration>() / took.len() as u32;
    println!(
        "search {label}: {mode:?} x{}: p50 {:.1} ms, p99 {:.1} ms, mean {:.1} ms, max {:.1} ms ({:.1} hits/query)",
        took.len(),
        ms(p(0.50)),
        ms(p(0.99)),
        ms(mean),
        ms(*took.last().expect("queries ran")),
        hits as f64 / took.len() as f64
    );
    Ok(())
}

async fn run_backend(label: &str, store: &dyn Store, total: usize) -> anyhow::Result<()> {
    store.migrate().await?;
    let embedder = HashEmbedder::new();
    let owner = OwnerId::local();
    let vocabulary: Vec<String> = (0..VOCABULARY).map(word).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let documents = total.div_ceil(CHUNKS_PER_DOCUMENT);
    let started = Instant::now();
    for index in 0..documents {
        load_document(store, &embedder, &owner, index, &mut rng, &vocabulary).await?;
        let loaded = (index + 1) * CHUNKS_PER_DOCUMENT;
        if loaded == CHECKPOINT && total > CHECKPOINT {
            println!(
                "load   {label}: {loaded} chunks in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            let at = format!("{label} @ {loaded} chunks");
            measure(
                &at,
                store,
                &embedder,
                &owner,
                SearchMode::Vector,
                SINGLE_MODE_QUERIES,
                &vocabulary,
            )
            .await?;
        }
    }
    let took = started.elapsed();
    let chunks = documents * CHUNKS_PER_DOCUMENT;
    println!(
        "load   {label}: {chunks} chunks in {documents} documents: {:.1} s total ({:.0} chunks/s; includes any checkpoint searches)",
        took.as_secs_f64(),
        chunks as f64 / took.as_secs_f64()
    );
    let at = format!("{label} @ {chunks} chunks");
    measure(
        &at,
        store,
        &embedder,
        &owner,
        SearchMode::Hybrid,
        HYBRID_QUERIES,
        &vocabulary,
    )
    .await?;
    for mode in [SearchMode::Vector, SearchMode::Keyword] {
        measure(
            &at,
            store,
            &embedder,
            &owner,
            mode,
            SINGLE_MODE_QUERIES,
            &vocabulary,
        )
        .await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total = chunk_count();
    println!(
        "search bench: {total} chunks of ~{WORDS_PER_CHUNK} words, {CHUNKS_PER_DOCUMENT} per document, HashEmbedder (384-d), limit 10"
    );
    let backends =
        std::env::var("SEARCH_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());

    if backends.contains("sqlite") {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("search.db").display());
        let store = SqliteStore::connect(&url).await?;
        run_backend("sqlite", &store, total).await?;
    }

    if backends.contains("postgres") {
        match postgres_admin_url() {
            Some(admin) => {
                let url = fresh_postgres_database(&admin).await;
                let store = PgStore::connect(&url).await?;
                run_backend("postgres", &store, total).await?;
            }
            None => println!("postgres: skipped (NAVIGATOR_TEST_DATABASE_URL is not set)"),
        }
    }
    Ok(())
}
