//! Throughput of the local model on full-size chunks.
//!
//! ```text
//! scripts/fetch-model.sh
//! cargo run --release -p navigator-embed --example embed_throughput
//! # optional: BENCH_BATCH_SIZES=1,8,32 BENCH_CHUNKS=128 BENCH_FORWARD=fused,candle RAYON_NUM_THREADS=2
//! ```
//!
//! Embeds 128 distinct insurance-like chunks of 230–256 word pieces (counted with the model's
//! own tokenizer, generated deterministically), after a warm-up, once per forward implementation
//! and batch size, and prints chunks/s, tokens/s and the CPU time used.

use std::time::Instant;

use navigator_embed::{
    BertForward, Embedder, LocalMiniLm, LocalOptions, MINILM_MAX_INPUT_TOKENS, TokenCounter,
    WordPieceCounter, default_model_dir,
};

const MIN_CHUNK_TOKENS: usize = 230;
/// Stop adding sentences once a chunk reaches this; the average lands near 240.
const TARGET_CHUNK_TOKENS: usize = 236;

const SUBJECTS: &[&str] = &[
    "The policyholder",
    "The insurer",
    "The claimant",
    "The loss adjuster",
    "The underwriter",
    "Each named driver",
    "The tenant",
    "The appointed broker",
    "The reinsurer",
    "Any beneficiary",
    "The fleet operator",
    "The contractor",
];
const VERBS: &[&str] = &[
    "shall notify the insurer of",
    "may cancel cover for",
    "must keep receipts documenting",
    "will be reimbursed for",
    "is entitled to claim for",
    "cannot recover costs arising from",
    "should photograph and report",
    "agrees to an inspection of",
    "is liable for the excess on",
    "must obtain written consent before repairing",
];
const OBJECTS: &[&str] = &[
    "water damage caused by a burst or frozen pipe",
    "theft of personal belongings from a locked vehicle",
    "storm damage to roofs, gutters and chimneys",
    "accidental breakage of glass in windows and doors",
    "subsidence affecting the foundations of the main building",
    "loss of rent while the premises are uninhabitable",
    "medical expenses incurred abroad during a covered trip",
    "business interruption following a fire at the insured site",
    "third-party injury on the insured premises",
    "malicious damage by persons other than the occupants",
    "spoilage of refrigerated stock after a power failure",
    "legal expenses for disputes with a contractor",
];
const QUALIFIERS: &[&str] = &[
    "within thirty days of the incident",
    "unless otherwise stated in the policy schedule",
    "subject to the annual aggregate limit",
    "provided the premium has been paid in full",
    "except where the property was left unoccupied for more than sixty days",
    "up to the sum insured shown on the certificate",
    "after the compulsory excess of two hundred and fifty euros",
    "only if a police report reference is supplied",
    "as assessed by an independent surveyor",
    "in accordance with the general conditions in section nine",
];

/// xorshift64*: deterministic and dependency-free; the benchmark only needs variety.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn sentence(rng: &mut Rng, chunk: usize, clause: usize) -> String {
    format!(
        "Clause {}.{}: {} {} {} {}.",
        chunk + 1,
        clause + 1,
        rng.pick(SUBJECTS),
        rng.pick(VERBS),
        rng.pick(OBJECTS),
        rng.pick(QUALIFIERS)
    )
}

/// A chunk of `MIN_CHUNK_TOKENS..=MINILM_MAX_INPUT_TOKENS` word pieces; tries further seeds in
/// the rare case the sentences drawn cannot land in that window.
fn make_chunk(counter: &WordPieceCounter, chunk: usize) -> String {
    (0_u64..)
        .find_map(|attempt| try_chunk(counter, chunk, attempt))
        .expect("some seed fits")
}

fn try_chunk(counter: &WordPieceCounter, chunk: usize, attempt: u64) -> Option<String> {
    let seed = (chunk as u64 + 1).wrapping_mul(0x1000_0001) ^ attempt.wrapping_mul(0x9e37_79b9);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
    let mut text = String::new();
    let mut clause = 0;
    let mut rejected = 0;
    while counter.count_tokens(&text) < TARGET_CHUNK_TOKENS && rejected < 20 {
        let candidate = if text.is_empty() {
            sentence(&mut rng, chunk, clause)
        } else {
            format!("{text} {}", sentence(&mut rng, chunk, clause))
        };
        if counter.count_tokens(&candidate) <= MINILM_MAX_INPUT_TOKENS {
            text = candidate;
            clause += 1;
        } else {
            rejected += 1;
        }
    }
    (counter.count_tokens(&text) >= MIN_CHUNK_TOKENS).then_some(text)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = default_model_dir().ok_or("no model directory; set NAVIGATOR_MODEL_DIR")?;
    let chunk_count: usize = env_or("BENCH_CHUNKS", "128").parse()?;
    let batch_sizes: Vec<usize> = env_or("BENCH_BATCH_SIZES", "8,16,32,64")
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let forwards: Vec<BertForward> = env_or("BENCH_FORWARD", "fused,candle")
        .split(',')
        .map(|s| match s.trim() {
            "fused" => Ok(BertForward::Fused),
            "candle" => Ok(BertForward::Candle),
            other => Err(format!("unknown forward {other:?}")),
        })
        .collect::<Result<_, _>>()?;

    let counter = WordPieceCounter::from_model_dir(&dir)?;
    let chunks: Vec<String> = (0..chunk_count).map(|i| make_chunk(&counter, i)).collect();
    let counts: Vec<usize> = chunks.iter().map(|c| counter.count_tokens(c)).collect();
    for (i, &count) in counts.iter().enumerate() {
        assert!(
            (MIN_CHUNK_TOKENS..=MINILM_MAX_INPUT_TOKENS).contains(&count),
            "chunk {i} has {count} tokens"
        );
    }
    let total_tokens: usize = counts.iter().sum();
    let mut distinct = chunks.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), chunks.len(), "chunks are not distinct");
    println!(
        "{} chunks, tokens min {} / mean {:.1} / max {}; candle threads {}; RAYON_NUM_THREADS={}",
        chunks.len(),
        counts.iter().min().unwrap_or(&0),
        total_tokens as f64 / chunks.len() as f64,
        counts.iter().max().unwrap_or(&0),
        candle_core::utils::get_num_threads(),
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
    );

    let warm_up = LocalMiniLm::load(&dir, LocalOptions::default())?;
    let started = Instant::now();
    warm_up.embed(&chunks[..chunks.len().min(16)]).await?;
    println!("warm-up: 16 chunks in {:.2?}", started.elapsed());
    drop(warm_up);

    for forward in forwards {
        for &batch_size in &batch_sizes {
            let options = LocalOptions {
                forward,
                ..LocalOptions::with_batch_size(batch_size)
            };
            let model = LocalMiniLm::load(&dir, options)?;
            let cpu_before = process_cpu_seconds();
            let started = Instant::now();
            let vectors = model.embed(&chunks).await?;
            let seconds = started.elapsed().as_secs_f64();
            let cpu = process_cpu_seconds()
                .zip(cpu_before)
                .map(|(after, before)| after - before);
            assert_eq!(vectors.len(), chunks.len());
            println!(
                "{forward:?} batch {batch_size:>3}: {seconds:>6.2} s  {:>6.2} chunks/s  {:>7.0} tokens/s  {}",
                chunks.len() as f64 / seconds,
                total_tokens as f64 / seconds,
                cpu.map_or_else(
                    || "cpu n/a".to_string(),
                    |cpu| format!(
                        "cpu {:.3} s/chunk ({:.2} cores busy)",
                        cpu / chunks.len() as f64,
                        cpu / seconds
                    ),
                ),
            );
        }
    }
    Ok(())
}

/// User + system CPU time of this process, from `/proc/self/stat` (Linux only). On a shared
/// machine wall time is noisy; CPU time shows whether the work itself got cheaper.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on every mainstream Linux build.
    Some((utime + stime) / 100.0)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}
