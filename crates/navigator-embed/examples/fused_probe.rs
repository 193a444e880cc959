//! TEMPORARY probe: candle BertModel vs a hand-fused BERT forward on the same batch.
use std::time::Instant;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::{BertModel, Config};

/// erf for f32 as a rational minimax approximation (the XLA / Eigen float erf), branch-free so
/// the loop vectorises.
#[inline(always)]
fn erf_fast(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2.mul_add(-2.726_142_3e-10, 2.770_681_4e-8);
    p = x2.mul_add(p, -2.101_024e-6);
    p = x2.mul_add(p, -5.692_506_4e-5);
    p = x2.mul_add(p, -7.349_906_3e-4);
    p = x2.mul_add(p, -2.954_6e-3);
    p = x2.mul_add(p, -1.609_603_3e-2);
    p *= x;
    let mut q = x2.mul_add(-1.456_607_2e-5, -2.133_740_6e-4);
    q = x2.mul_add(q, -1.682_827e-3);
    q = x2.mul_add(q, -7.373_329e-3);
    q = x2.mul_add(q, -1.426_474e-2);
    p / q
}

fn gelu_slice(src: &[f32], dst: &mut [f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = 0.5 * x * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

struct FastGelu;
impl candle_core::CustomOp1 for FastGelu {
    fn name(&self) -> &'static str {
        "fast-gelu-erf"
    }
    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("f32 only")
        };
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("contiguous only".into()))?;
        let src = &data[start..end];
        let mut dst = vec![0f32; src.len()];
        let threads = candle_core::utils::get_num_threads().max(1);
        let chunk = src.len().div_ceil(threads).max(1);
        if threads == 1 || src.len() < 65536 {
            gelu_slice(src, &mut dst);
        } else {
            std::thread::scope(|s| {
                for (sc, dc) in src.chunks(chunk).zip(dst.chunks_mut(chunk)) {
                    s.spawn(move || gelu_slice(sc, dc));
                }
            });
        }
        Ok((candle_core::CpuStorage::F32(dst), layout.shape().clone()))
    }
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_ln: LayerNorm,
    inter: Linear,
    out: Linear,
    out_ln: LayerNorm,
}

struct Fused {
    word: Tensor,
    pos: Tensor,
    tok0: Tensor,
    emb_ln: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
}

fn linear(vb: &VarBuilder, name: &str) -> candle_core::Result<Linear> {
    let w = vb.get_unchecked(&format!("{name}.weight"))?;
    let b = vb.get_unchecked(&format!("{name}.bias"))?;
    Ok(Linear::new(w, Some(b)))
}

fn ln(vb: &VarBuilder, name: &str, eps: f64) -> candle_core::Result<LayerNorm> {
    let w = vb.get_unchecked(&format!("{name}.weight"))?;
    let b = vb.get_unchecked(&format!("{name}.bias"))?;
    Ok(LayerNorm::new(w, b, eps))
}

impl Fused {
    fn load(vb: &VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let head = c.hidden_size / c.num_attention_heads;
        let scale = 1.0 / (head as f64).sqrt();
        let mut layers = Vec::new();
        for i in 0..c.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let q = linear(vb, &format!("{p}.attention.self.query"))?;
            let k = linear(vb, &format!("{p}.attention.self.key"))?;
            let v = linear(vb, &format!("{p}.attention.self.value"))?;
            let w = Tensor::cat(
                &[
                    (q.weight() * scale)?,
                    k.weight().clone(),
                    v.weight().clone(),
                ],
                0,
            )?;
            let b = Tensor::cat(
                &[
                    (q.bias().unwrap() * scale)?,
                    k.bias().unwrap().clone(),
                    v.bias().unwrap().clone(),
                ],
                0,
            )?;
            layers.push(Layer {
                qkv: Linear::new(w, Some(b)),
                attn_out: linear(vb, &format!("{p}.attention.output.dense"))?,
                attn_ln: ln(
                    vb,
                    &format!("{p}.attention.output.LayerNorm"),
                    c.layer_norm_eps,
                )?,
                inter: linear(vb, &format!("{p}.intermediate.dense"))?,
                out: linear(vb, &format!("{p}.output.dense"))?,
                out_ln: ln(vb, &format!("{p}.output.LayerNorm"), c.layer_norm_eps)?,
            });
        }
        Ok(Self {
            word: vb.get_unchecked("embeddings.word_embeddings.weight")?,
            pos: vb.get_unchecked("embeddings.position_embeddings.weight")?,
            tok0: vb
                .get_unchecked("embeddings.token_type_embeddings.weight")?
                .get(0)?,
            emb_ln: ln(vb, "embeddings.LayerNorm", c.layer_norm_eps)?,
            layers,
            heads: c.num_attention_heads,
        })
    }

    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let hidden = self.word.dim(1)?;
        let head = hidden / self.heads;
        let x = self
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, hidden))?;
        let pos = self.pos.narrow(0, 0, l)?.broadcast_add(&self.tok0)?;
        let mut x = self.emb_ln.forward(&x.broadcast_add(&pos)?)?;
        // (b, 1, 1, l): 0 for tokens, large negative for padding.
        let bias = ((mask - 1.0)? * 1e9)?.reshape((b, 1, 1, l))?;
        let uniform = mask.min_all()?.to_scalar::<f32>()? > 0.5;
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?; // (b, l, 3*hidden)
            let qkv = qkv
                .reshape((b, l, 3, self.heads, head))?
                .permute((2, 0, 3, 1, 4))?
                .contiguous()?; // (3, b, heads, l, head)
            let q = qkv.get(0)?;
            let k = qkv.get(1)?;
            let v = qkv.get(2)?;
            let mut scores = q.matmul(&k.t()?)?;
            if !uniform {
                scores = scores.broadcast_add(&bias)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, l, hidden))?;
            let attn = layer
                .attn_ln
                .forward(&(layer.attn_out.forward(&ctx)? + &x)?)?;
            let inter = layer.inter.forward(&attn)?;
            let inter = if std::env::var("FASTGELU").is_ok() {
                inter.apply_op1_no_bwd(&FastGelu)?
            } else {
                inter.gelu_erf()?
            };
            x = layer
                .out_ln
                .forward(&(layer.out.forward(&inter)? + &attn)?)?;
        }
        Ok(x)
    }
}

fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut worst = 0f32;
    let mut x = -6.0f32;
    while x < 6.0 {
        let exact = 0.5 * x * (1.0 + libm_erf(x * std::f32::consts::FRAC_1_SQRT_2));
        let mut out = [0f32];
        gelu_slice(&[x], &mut out);
        worst = worst.max((out[0] - exact).abs());
        x += 1e-4;
    }
    println!("fast gelu max abs error vs erf in f64: {worst:e}");
    let dir = navigator_embed::default_model_dir().unwrap();
    let c: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let vb = VarBuilder::from_buffered_safetensors(
        std::fs::read(dir.join("model.safetensors"))?,
        DType::F32,
        &Device::Cpu,
    )?;
    let bert = BertModel::load(vb.clone(), &c)?;
    let fused = Fused::load(&vb, &c)?;
    let b: usize = std::env::var("B")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let l = 248;
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let ids: Vec<u32> = (0..b * l)
        .map(|i| 1000 + (i * 7919 % 20000) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (b, l), &Device::Cpu)?;
    let mut m = vec![1f32; b * l];
    for j in 240..l {
        m[j] = 0.0; // first row is shorter: exercises the mask
    }
    let mask = Tensor::from_vec(m, (b, l), &Device::Cpu)?;
    let tt = ids.zeros_like()?;
    let a = bert.forward(&ids, &tt, Some(&mask))?;
    let f = fused.forward(&ids, &mask)?;
    let diff = (a.narrow(1, 0, 240)? - f.narrow(1, 0, 240)?)?
        .abs()?
        .flatten_all()?
        .max(D::Minus1)?
        .to_scalar::<f32>()?;
    println!("max diff bert vs fused on real tokens: {diff:e}");
    for name in ["bert", "fused", "bert", "fused"] {
        let (c0, t0) = (cpu(), Instant::now());
        for _ in 0..reps {
            if name == "bert" {
                bert.forward(&ids, &tt, Some(&mask))?;
            } else {
                fused.forward(&ids, &mask)?;
            }
        }
        let (cs, ws) = (cpu() - c0, t0.elapsed().as_secs_f64());
        let n = (b * reps) as f64;
        println!(
            "{name:>5} b={b}: {:.2} chunks/s wall, {:.3} cpu-s/chunk ({:.2} cores)",
            n / ws,
            cs / n,
            cs / ws
        );
    }
    Ok(())
}

fn libm_erf(x: f32) -> f32 {
    // f64 reference via candle's own gelu_erf on a 1-element tensor would be circular; use the
    // series through a Tensor op in f64 instead.
    let t = Tensor::new(&[x as f64], &Device::Cpu).unwrap();
    let g = t.gelu_erf().unwrap().to_vec1::<f64>().unwrap()[0];
    // gelu(x) = 0.5 x (1 + erf(x/sqrt2)) => recover erf from gelu at sqrt2 * (x)
    let xs = x as f64 * std::f64::consts::SQRT_2;
    let t2 = Tensor::new(&[xs], &Device::Cpu).unwrap();
    let g2 = t2.gelu_erf().unwrap().to_vec1::<f64>().unwrap()[0];
    let _ = g;
    if xs == 0.0 { 0.0 } else { (2.0 * g2 / xs - 1.0) as f32 }
}
