//! End-to-end ingest benchmark: a generated 230-page Evidence-of-Coverage-like PDF, measured stage
//! by stage in-process, then upload-to-searchable through the real worker pipeline (parser sandbox,
//! SQLite, local blob directory, local all-MiniLM-L6-v2).
//!
//! Run with `bench/run.sh` (release build). Prints one line per measurement.
//!
//! Peak memory per stage is the process's resident high-water mark (VmHWM), reset before each
//! stage by writing `5` to `/proc/self/clear_refs`, so each figure is that stage's own peak.

use navigator_domain::{MediaType, OwnerId, Sha256Hex};
use navigator_embed::{Embedder, LocalMiniLm, LocalOptions, TokenCounter, WordPieceCounter};
use navigator_pipeline::chunk::{ChunkerConfig, chunk_document};
use navigator_pipeline::ingest::{self, Upload};
use navigator_server::app::{App, BuildOptions};
use navigator_store::OwnerScope;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PAGES: usize = 230;

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Resident high-water mark in MiB since the last reset.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn model_dir() -> PathBuf {
    std::env::var_os("NAVIGATOR_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/navigator/models/all-MiniLM-L6-v2")
        })
}

fn navigator_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.with_file_name("navigator")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let model = model_dir();
    let pdf =
        navigator_testkit::docs::pdf(&navigator_testkit::docs::insurance_policy_pages(PAGES, 7));
    println!("document: {PAGES} generated pages, {} bytes", pdf.len());

    // ---- parse -----------------------------------------------------------------------------
    reset_peak_rss();
    let started = Instant::now();
    let parsed = navigator_parse::parse(MediaType::Pdf, &pdf)?;
    let took = started.elapsed();
    println!(
        "parse:  {:>8.1} pages/s   ({} pages in {:.3} s, peak RSS {:.0} MiB)",
        parsed.pages.len() as f64 / took.as_secs_f64(),
        parsed.pages.len(),
        took.as_secs_f64(),
        peak_rss_mib()
    );

    // ---- chunk -----------------------------------------------------------------------------
    let counter = WordPieceCounter::from_model_dir(&model)?;
    reset_peak_rss();
    let started = Instant::now();
    let chunks = chunk_document(&parsed, &counter, &ChunkerConfig::default());
    let took = started.elapsed();
    let tokens: usize = chunks.iter().map(|c| c.token_count as usize).sum();
    let longest = chunks.iter().map(|c| c.token_count).max().unwrap_or(0);
    println!(
        "chunk:  {:>8.1} chunks/s  ({} chunks, mean {:.0} / max {} word pieces, {:.3} s, peak RSS {:.0} MiB)",
        chunks.len() as f64 / took.as_secs_f64(),
        chunks.len(),
        tokens as f64 / chunks.len().max(1) as f64,
        longest,
        took.as_secs_f64(),
        peak_rss_mib()
    );
    assert!(
        longest as usize <= counter.max_input_tokens(),
        "a chunk exceeds the model limit"
    );

    // ---- embed -----------------------------------------------------------------------------
    reset_peak_rss();
    let embedder = LocalMiniLm::load(&model, LocalOptions::default())?;
    let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
    // Warm-up on a few chunks so one-time allocation is not counted.
    embedder.embed(&texts[..texts.len().min(8)]).await?;
    let started = Instant::now();
    let vectors = embedder.embed(&texts).await?;
    let took = started.elapsed();
    println!(
        "embed:  {:>8.1} chunks/s  ({} embeddings, {:.0} word pieces/s, {:.2} s, peak RSS {:.0} MiB)",
        vectors.len() as f64 / took.as_secs_f64(),
        vectors.len(),
        tokens as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        peak_rss_mib()
    );
    drop(embedder);

    // ---- upload to searchable, through the real worker pipeline -----------------------------
    let data = tempfile::tempdir()?;
    let config_path = data.path().join("navigator.yaml");
    std::fs::write(
        &config_path,
        format!(
            "data_dir: {}\nembedder:\n  kind: local\n  local:\n    model_dir: {}\nworkers:\n  concurrency: 1\n  poll_interval_ms: 20\nlog:\n  level: warn\n",
            data.path().join("data").display(),
            model.display()
        ),
    )?;
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k == "HOME")
        .collect();
    let config = navigator_server::config::load(Some(&config_path), &env)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    reset_peak_rss();
    let app = App::build(
        config,
        BuildOptions::with_sandbox_binary(navigator_binary()),
    )
    .await?;
    let file = data.path().join("policy.pdf");
    std::fs::write(&file, &pdf)?;
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    let created = ingest::accept(
        app.state.store.as_ref(),
        &app.state.blobs,
        Upload {
            owner: OwnerId::local(),
            filename: "policy.pdf".into(),
            declared_type: None,
            file: Path::new(&file),
            bytes: pdf.len() as u64,
            sha256: Sha256Hex::of(&pdf),
            metadata: serde_json::json!({}),
            idempotency_key: None,
        },
        app.state.clock.now(),
    )
    .await?;
    app.spawn_workers(&mut tasks);
    let job = loop {
        let job = app
            .state
            .store
            .get_job(&OwnerScope::All, created.job.id)
            .await?;
        if job.status.is_terminal() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    app.state.shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    println!(
        "end-to-end: upload → searchable in {:.2} s for {PAGES} pages ({:?}, {} chunks; peak RSS of the serving process {:.0} MiB; the parser child is separate)",
        took.as_secs_f64(),
        job.status,
        job.progress.chunks_total.unwrap_or(0),
        peak_rss_mib()
    );
    Ok(())
}
